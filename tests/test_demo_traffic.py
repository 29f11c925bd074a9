"""`threadline demo traffic`: simulated shoppers drive the real API (an in-process server on a loopback port) over
a simulated clock, and the analytics computed from the log agree with what was driven."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threadline.analytics.report import Config, Filters, attribution_report, load, metrics_report
from threadline.cli.demo_traffic import run_traffic
from threadline.cli.main import app
from threadline.core.settings import Settings
from threadline.core.types import EventType
from threadline.memory.db import Database
from threadline.memory.stores import Stores

START = date(2026, 3, 2)  # a Monday
DAYS = 3


def test_the_command_is_listed() -> None:
    result = CliRunner().invoke(app, ["demo", "traffic", "--help"])
    assert result.exit_code == 0
    assert "--customers" in result.output and "--days" in result.output and "--seed" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_simulated_traffic_runs_real_turns_and_the_analytics_count_them(demo_db_url: str, tmp_path: Path) -> None:
    pristine = tmp_path / "pristine.db"
    shutil.copy(demo_db_url.split("///", 1)[1], pristine)
    settings = Settings(data_dir=tmp_path / "first", database_url=demo_db_url, load_demo=False)
    report = run_traffic(settings, customers=5, days=DAYS, seed=5, start=START)
    assert report.turns > 0 and report.escalations > 0 and report.purchases > 0
    assert report.claimed + report.unclaimed == report.escalations

    db = Database.from_url(demo_db_url)
    try:
        stores = Stores.over(db)
        turns = stores.events.between(types={EventType.TURN})
        received = stores.events.between(types={EventType.MESSAGE_RECEIVED})
        # Every message the driver sent was received once, on the simulated clock (the days driven, not today).
        assert len(received) == report.turns
        assert {e.occurred_at.date() for e in received} <= {date(2026, 3, d) for d in range(1, 6)}
        assert turns and all(e.occurred_at.date() < date(2026, 3, 6) for e in turns)
        config = Config.from_settings(settings)
        data = load(stores, config, Filters(date(2026, 3, 1), date(2026, 3, 6)))
        overall = metrics_report(data)["overall"]
        assert overall["handoffs"] == report.escalations
        assert overall["claimed_handoffs"] == report.claimed
        assert overall["rated_handoffs"] == report.ratings
        assert overall["conversations"] >= 1 and overall["ai_conversations"] >= 1
        assert attribution_report(data)["purchases"] == report.purchases
        # The one-off admin key the driver used is revoked afterwards.
        assert all(k.revoked_at is not None for k in stores.api_keys.list() if k.name == "demo traffic agent")
    finally:
        db.dispose()

    # The same seed and start over a fresh copy of the store: the same traffic, the same figures (but for time to
    # human, which is measured on the server's own clock).
    again = Settings(data_dir=tmp_path / "second", database_url=f"sqlite:///{pristine}", load_demo=False)
    assert run_traffic(again, customers=5, days=DAYS, seed=5, start=START) == report
    second = Database.from_url(again.sqlalchemy_url)
    try:
        replayed = metrics_report(load(Stores.over(second), config, Filters(date(2026, 3, 1), date(2026, 3, 6))))
        clock_free = ("median_time_to_human_s", "mean_time_to_human_s")
        assert {k: v for k, v in replayed["overall"].items() if k not in clock_free} == {
            k: v for k, v in overall.items() if k not in clock_free
        }
    finally:
        second.dispose()
