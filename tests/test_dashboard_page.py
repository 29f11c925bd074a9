"""`/dashboard`: after simulated traffic through the real API, a real browser (Chromium via Playwright) signs in with
a QA key, picks the simulated days, and every chart and headline figure shows the analytics API's numbers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect, sync_playwright

from tests.live import CHROMIUM, CHROMIUM_ARGS, require_chromium, serve
from threadline.api.app import create_app
from threadline.cli.demo_traffic import run_traffic
from threadline.core.delivery import DeliveryState, NewDelivery, SendReceipt
from threadline.core.settings import Settings
from threadline.core.types import Channel
from threadline.memory.db import Database
from threadline.memory.stores import Stores

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
ADMIN_KEY = "admin-key-for-dashboard-01"
QA_KEY = "qa-key-for-dashboard-0001"
START, END = date(2026, 3, 2), date(2026, 3, 5)
RANGE = {"from": START.isoformat(), "to": END.isoformat()}

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _settings(demo_db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path, database_url=demo_db_url, load_demo=False, bootstrap_keys=f"admin:{ADMIN_KEY},qa:{QA_KEY}"
    )


def test_the_dashboard_and_its_assets_are_served_outside_the_openapi_description(
    demo_db_url: str, tmp_path: Path
) -> None:
    with TestClient(create_app(_settings(demo_db_url, tmp_path))) as client:
        page = client.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        for testid in ("api-key", "signin-submit", "filter-from", "chart-volumes", "chart-trend", "paths-purchase"):
            assert f'data-testid="{testid}"' in page.text
        library = client.get("/dashboard/static/vendor/chartjs/chart.umd.js")
        assert library.status_code == 200 and "Chart.js v4" in library.text[:200]
        assert client.get("/dashboard/static/dashboard.js").status_code == 200
        assert not [path for path in client.get("/openapi.json").json()["paths"] if path.startswith("/dashboard")]


def _api(base: str, path: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/v1/analytics/{path}", params=RANGE, headers={"Authorization": f"Bearer {QA_KEY}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 1000) / 10


def _seed_deliveries(settings: Settings) -> None:
    """Three outbound provider messages inside the range, straight through the outbox: an SMS sent, an SMS the
    provider refused, an email that died after its retries."""
    db = Database.from_url(settings.sqlalchemy_url)
    try:
        stores = Stores.over(db)
        customer = stores.customers.create(provisional=True).id
        at = datetime.combine(START, time(12), tzinfo=UTC)
        for index, (channel, provider) in enumerate([("sms", "twilio"), ("sms", "twilio"), ("email", "smtp")]):
            new = NewDelivery(
                idempotency_key=f"dashboard:{index}",
                message_id=None,
                customer_id=customer,
                channel=Channel(channel),
                provider=provider,
                recipient="+15550100146" if channel == "sms" else "ada@example.com",
                body="Your order shipped.",
            )
            stores.outbox.enqueue(new, now=at)
        sent, refused, died = stores.outbox.claim("test", now=at, lease=timedelta(seconds=60))
        stores.outbox.mark_sent(sent.id, "test", SendReceipt(provider_message_id="SM1"), now=at)
        stores.outbox.mark_failed(refused.id, "test", "400: invalid number", state=DeliveryState.FAILED, now=at)
        stores.outbox.mark_failed(died.id, "test", "connection refused", state=DeliveryState.DEAD, now=at)
    finally:
        db.dispose()


@pytest.fixture
def live_server(demo_db_url: str, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings = _settings(demo_db_url, tmp_path)
    with serve(create_app(settings), "dashboard-server") as base:
        yield base, settings


@pytest.mark.slow
def test_the_dashboard_draws_the_api_numbers_after_demo_traffic(live_server: tuple[str, Settings]) -> None:
    require_chromium()
    REPORTS.mkdir(exist_ok=True)
    base, settings = live_server
    driven = run_traffic(settings, customers=5, days=4, seed=5, start=START, url=base, key=ADMIN_KEY)
    assert driven.turns > 0 and driven.escalations > 0 and driven.purchases > 0
    _seed_deliveries(settings)
    summary, metrics, attribution = _api(base, "summary"), _api(base, "metrics"), _api(base, "attribution")
    journeys, delivery = _api(base, "journeys"), _api(base, "delivery")
    assert [(r["channel"], r["total"], r["failed"], r["dead"]) for r in delivery["by_channel"]] == [
        ("email", 1, 0, 1),
        ("sms", 2, 1, 0),
    ]
    assert summary["headline"]["conversations"] > 0 and metrics["overall"]["handoffs"] == driven.escalations

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1600})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{base}/dashboard")
            expect(page.locator("body[data-ready=true]")).to_have_count(1)
            page.get_by_test_id("api-key").fill(QA_KEY)
            page.get_by_test_id("signin-submit").click()
            expect(page.locator("body[data-loaded=true]")).to_have_count(1)
            page.get_by_test_id("filter-from").fill(RANGE["from"])
            page.get_by_test_id("filter-to").fill(RANGE["to"])
            page.get_by_test_id("apply").click()
            expect(page.get_by_test_id("status")).to_have_text(f"{RANGE['from']} to {RANGE['to']}")
            expect(page.locator("body[data-loaded=true]")).to_have_count(1)

            headline = summary["headline"]
            expect(page.get_by_test_id("kpi-conversations")).to_have_text(str(headline["conversations"]))
            expect(page.get_by_test_id("kpi-containment")).to_have_text(f"{headline['containment'] * 100:.1f}%")
            fcr = headline["first_contact_resolution"]
            expect(page.get_by_test_id("kpi-first_contact_resolution")).to_have_text(f"{fcr * 100:.1f}%")
            ai_resolution = headline["ai_resolution"]
            expect(page.get_by_test_id("kpi-ai_resolution")).to_have_text(f"{ai_resolution * 100:.1f}%")
            # Every figure carries its explanation, with the counts behind it.
            for key, why in summary["explanations"].items():
                if page.get_by_test_id(f"why-{key}").count():
                    expect(page.get_by_test_id(f"why-{key}")).to_have_text(why)
            m = metrics["overall"]
            expect(page.get_by_test_id("why-first_contact_resolution")).to_contain_text(
                f"{m['first_contact_resolved']} of {m['cases']} cases"
            )
            expect(page.get_by_test_id("why-ai_resolution")).to_contain_text(
                f"{m['confirmed_resolutions']} confirmed (the customer said it helped) and "
                f"{m['assumed_resolutions']} assumed"
            )
            # How the AI conversations ended: the five outcomes add up to the AI conversations.
            assert sum(summary["outcomes"].values()) == m["ai_conversations"]
            for outcome, count in summary["outcomes"].items():
                expect(page.get_by_test_id(f"outcome-{outcome}")).to_have_text(str(count))
            gaps = page.get_by_test_id("gap-queries").get_by_test_id("gap-query")
            expect(gaps).to_have_count(len(summary["top_gap_queries"]))
            if summary["top_gap_queries"]:
                expect(gaps.first).to_contain_text(summary["top_gap_queries"][0]["query"])
            credited = f"{attribution['attributed_purchases']} / {attribution['purchases']}"
            expect(page.get_by_test_id("kpi-attributed_purchases")).to_have_text(credited)

            for chart in ("volumes", "trend", "reasons", "hours", "attribution"):
                expect(page.get_by_test_id(f"chart-{chart}")).to_have_attribute("data-rendered", "true")

            def plotted(chart: str) -> list[list[Any]]:
                data: list[list[Any]] = page.evaluate(
                    "id => Chart.getChart(document.getElementById(id)).data.datasets.map(d => d.data)", f"chart-{chart}"
                )
                return data

            def labels(chart: str) -> list[str]:
                found: list[str] = page.evaluate(
                    "id => Chart.getChart(document.getElementById(id)).data.labels", f"chart-{chart}"
                )
                return found

            volumes = summary["volumes_by_channel"]
            assert plotted("volumes") == [list(volumes.values())]
            days = list(metrics["by_day"])
            assert labels("trend") == days
            assert plotted("trend") == [
                [_pct(metrics["by_day"][d]["containment"]) for d in days],
                [_pct(metrics["by_day"][d]["first_contact_resolution"]) for d in days],
            ]
            reasons = metrics["overall"]["escalation_reasons"]
            assert plotted("reasons") == [list(reasons.values())] and sum(reasons.values()) == driven.escalations
            measures = ("containment", "first_contact_resolution", "escalation_rate", "involvement")
            assert plotted("hours") == [
                [_pct((metrics["by_hours"].get(side) or {}).get(m)) for m in measures]
                for side in ("business", "after_hours")
            ]
            by_channel = attribution["by_channel"]
            assert plotted("attribution") == [
                [by_channel[c]["last_touch"]["purchases"] for c in by_channel],
                [by_channel[c]["linear"]["purchases"] for c in by_channel],
            ]
            paths = page.get_by_test_id("paths-purchase").get_by_test_id("path")
            expect(paths).to_have_count(len(journeys["top_paths_to_purchase"]))
            if journeys["top_paths_to_purchase"]:
                expect(paths.first).to_contain_text(" → ".join(journeys["top_paths_to_purchase"][0]["path"]))
            # Delivery failure rate by channel: the API's counts and rates, and all channels together.
            for rate in delivery["by_channel"]:
                row = page.locator(f'[data-testid="delivery-channel"][data-channel="{rate["channel"]}"]')
                expect(row.locator('[data-cell="total"]')).to_have_text(str(rate["total"]))
                expect(row.locator('[data-cell="failed"]')).to_have_text(str(rate["failed"]))
                expect(row.locator('[data-cell="dead"]')).to_have_text(str(rate["dead"]))
                expect(row.locator('[data-cell="rate"]')).to_have_text(f"{rate['rate'] * 100:.1f}%")
            expect(page.get_by_test_id("delivery-all").locator('[data-cell="rate"]')).to_have_text("66.7%")
            page.screenshot(path=str(REPORTS / "dashboard.png"), full_page=True)
            assert not problems, problems
        finally:
            browser.close()
