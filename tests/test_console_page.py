"""`/console`: the agent console. A real browser (Chromium via Playwright) signs in with an agent key, picks up an
SMS escalation from the queue, claims it and replies on the customer's channel, sees the customer's next message
arrive live while the AI stays silent, and hands the case back to the AI, which answers the message after."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect, sync_playwright

from tests.live import CHROMIUM, CHROMIUM_ARGS, require_chromium, serve
from threadline.api.app import create_app
from threadline.conversations.delivery import CaseRaiser
from threadline.core.delivery import DeliveryState, NewDelivery
from threadline.core.settings import Settings
from threadline.core.types import Channel, Direction
from threadline.memory.db import Database
from threadline.memory.stores import Stores

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
AGENT_KEY = "agent-key-for-console-0001"
CHANNEL_KEY = "channel-key-for-console-01"
AGENT = {"Authorization": f"Bearer {AGENT_KEY}"}
CHANNEL = {"Authorization": f"Bearer {CHANNEL_KEY}"}
PHONE = "+15550100142"  # 555-0100…0199 numbers are reserved for fiction
LIVE_TIMEOUT_MS = 30_000

# The page is backend-independent: SQLite is enough.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _settings(demo_db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        bootstrap_keys=f"channel:{CHANNEL_KEY},agent:{AGENT_KEY}",
    )


def test_the_console_and_its_assets_are_served_outside_the_openapi_description(
    demo_db_url: str, tmp_path: Path
) -> None:
    with TestClient(create_app(_settings(demo_db_url, tmp_path))) as client:
        page = client.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "<script>" not in page.text  # only the JSON config and the external script
        for testid in ("agent-key", "signin-submit", "queue", "timeline", "reply-input", "claim", "release"):
            assert f'data-testid="{testid}"' in page.text
        assert client.get("/console/static/console.js").status_code == 200
        assert client.get("/console/static/console.css").status_code == 200
        assert not [path for path in client.get("/openapi.json").json()["paths"] if path.startswith("/console")]


# --- the browser ----------------------------------------------------------------------------------------------


@pytest.fixture
def live_server(demo_db_url: str, tmp_path: Path) -> Iterator[str]:
    """The app over the demo database, served on a free local port from a background thread."""
    with serve(create_app(_settings(demo_db_url, tmp_path)), "console-server") as base:
        yield base


def _say(base: str, text: str) -> dict[str, Any]:
    body = {"channel": "sms", "from": PHONE, "text": text}
    response = httpx.post(f"{base}/v1/messages", json=body, headers=CHANNEL, timeout=60)
    assert response.status_code == 200, response.text
    said: dict[str, Any] = response.json()
    return said


def _outbound(base: str, customer_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/v1/customers/{customer_id}/timeline", headers=AGENT, timeout=30)
    assert response.status_code == 200, response.text
    return [e for e in response.json() if e["kind"] == "message" and e["direction"] == "outbound"]


@pytest.mark.slow
def _signed_in(browser: Any, base: str, *, width: int) -> tuple[Any, list[str]]:
    """A console page signed in with the agent key, and the page errors it raises from then on."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{base}/console")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    page.get_by_test_id("agent-key").fill(AGENT_KEY)
    page.get_by_test_id("signin-submit").click()
    return page, problems


def test_an_agent_takes_an_sms_escalation_and_hands_it_back_in_the_browser(live_server: str) -> None:
    require_chromium()
    REPORTS.mkdir(exist_ok=True)

    escalated = _say(live_server, "I want to talk to a person")
    assert escalated["owner"] == "queue" and escalated["handoff_id"]
    customer_id, handoff_id = escalated["customer_id"], escalated["handoff_id"]
    notice = _outbound(live_server, customer_id)
    assert [m["text"] for m in notice] == [escalated["reply"]]  # the escalation turn logs the handoff notice only

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{live_server}/console")
            expect(page.locator("body[data-ready=true]")).to_have_count(1)

            # A wrong key is refused with the API's message; the agent key signs in.
            page.get_by_test_id("agent-key").fill("not-a-real-key-0000000000")
            page.get_by_test_id("signin-submit").click()
            expect(page.get_by_test_id("signin-error")).to_contain_text("not valid")
            problems.clear()  # the browser logs the 401 itself
            page.get_by_test_id("agent-key").fill(AGENT_KEY)
            page.get_by_test_id("signin-submit").click()
            expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")

            # The handoff is in the queue; open it: the packet shows why the AI stopped.
            item = page.locator(f'[data-testid="queue-item"][data-handoff="{handoff_id}"]')
            expect(item).to_be_visible()
            expect(item.get_by_test_id("queue-stall")).to_have_text("customer requested human")
            expect(item.get_by_test_id("queue-status")).to_have_text("Waiting")
            item.click()
            expect(page.get_by_test_id("stall-type")).to_have_text("customer_requested_human")
            expect(page.get_by_test_id("packet-stall")).to_contain_text("I want to talk to a person")
            timeline = page.get_by_test_id("timeline")
            expect(timeline.locator('[data-role="customer"]')).to_have_count(1)
            expect(page.get_by_test_id("reply-input")).to_be_disabled()

            # Claim and reply: the reply goes out as an SMS.
            page.get_by_test_id("claim").click()
            expect(page.get_by_test_id("case-status")).to_have_text("You have this case")
            expect(page.get_by_test_id("reply-input")).to_be_enabled()
            reply = "Hi, this is Sam from the support team. How can I help?"
            page.get_by_test_id("reply-input").fill(reply)
            page.get_by_test_id("reply-send").click()
            expect(timeline.locator('[data-role="agent"]')).to_have_count(1)
            expect(timeline.locator('[data-role="agent"]')).to_contain_text(reply)
            outbound = _outbound(live_server, customer_id)
            assert len(outbound) == 2
            assert (outbound[-1]["channel"], outbound[-1]["text"]) == ("sms", reply)

            # The customer writes again: it appears live, and the AI stays silent.
            waiting = _say(live_server, "thanks, when will it arrive?")
            assert (waiting["owner"], waiting["reply"]) == ("human", None)
            customer_lines = timeline.locator('[data-role="customer"]')
            expect(customer_lines).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
            expect(customer_lines.nth(1)).to_contain_text("thanks, when will it arrive?")
            expect(customer_lines.nth(1)).to_have_attribute("data-channel", "sms")
            assert len(_outbound(live_server, customer_id)) == 2  # the notice and the agent's reply, nothing else
            page.screenshot(path=str(REPORTS / "console.png"))

            # Release with a note: the case leaves the queue and the AI answers the next message.
            page.get_by_test_id("release").click()
            page.get_by_test_id("release-note").fill("Told them a person is checking the delivery date.")
            page.get_by_test_id("release-confirm").click()
            expect(page.get_by_test_id("case-status")).to_have_text("Back with the AI")
            expect(item).to_have_count(0)
            answered = _say(live_server, "what is your return policy?")
            assert answered["owner"] == "ai" and answered["reply"]
            assert len(_outbound(live_server, customer_id)) == 3
            expect(timeline.locator('[data-role="ai"]')).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
            assert not problems, problems
        finally:
            browser.close()


def test_an_agent_runs_a_return_from_the_console_for_a_claimed_case(live_server: str) -> None:
    """The agent who owns the case returns an item for the customer: the store policy applies, there is no
    customer confirmation step (the agent is the person in the loop), and the action is audited as theirs."""
    require_chromium()
    phone = "+15550100143"

    def say(text: str) -> dict[str, Any]:
        response = httpx.post(
            f"{live_server}/v1/messages",
            json={"channel": "sms", "from": phone, "text": text},
            headers=CHANNEL,
            timeout=60,
        )
        assert response.status_code == 200, response.text
        said: dict[str, Any] = response.json()
        return said

    say("emma.santos7683@example.com")  # Emma verifies by email, then asks for a person
    escalated = say("i need to talk to a real person about returning my office chair, its broken")
    assert escalated["owner"] == "queue"
    customer_id, handoff_id = escalated["customer_id"], escalated["handoff_id"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = _signed_in(browser, live_server, width=1440)
            page.locator(f'[data-testid="queue-item"][data-handoff="{handoff_id}"]').click()
            page.get_by_test_id("claim").click()
            expect(page.get_by_test_id("case-status")).to_have_text("You have this case")

            page.get_by_test_id("order-actions").click()
            panel = page.get_by_test_id("order-panel")
            expect(panel).to_be_visible()
            panel.get_by_test_id("order-pick").select_option("#W3113816")
            panel.get_by_test_id("order-kind").select_option("return")
            chair = panel.get_by_test_id("order-lines").locator("label", has_text="Office Chair")
            chair.locator("input").check()
            expect(panel.get_by_test_id("order-refund")).to_contain_text("Original")
            panel.get_by_test_id("order-submit").click()
            expect(panel.get_by_test_id("order-result")).to_have_text(
                "Return done for #W3113816: now return requested.", timeout=LIVE_TIMEOUT_MS
            )
            expect(panel.get_by_test_id("order-history")).to_contain_text("agent")
            page.screenshot(path=str(REPORTS / "console-order-action.png"))
            assert problems == []
        finally:
            browser.close()

    actions = httpx.get(f"{live_server}/v1/customers/{customer_id}/actions", headers=AGENT, timeout=30).json()
    assert [(a["kind"], a["outcome"], a["channel"]) for a in actions] == [("return", "done", "console")]
    assert actions[0]["actor"].startswith("agent:") and actions[0]["confirming_message_id"] is None
    assert actions[0]["before"]["status"] == "delivered" and actions[0]["after"]["status"] == "return requested"
    assert actions[0]["action"]["payment_method_id"].startswith("credit_card")


def test_a_failed_whatsapp_message_is_marked_in_the_queue_and_the_case(live_server: str, demo_db_url: str) -> None:
    """A WhatsApp message to the customer fails at the provider: the outbox raises a case, the queue marks it
    "delivery failed", the case shows the message as failed (the provider's error on hover), and the line above
    the reply box says a free-form reply may still go (the customer wrote a moment ago)."""
    require_chromium()
    db = Database.from_url(demo_db_url)
    try:
        stores = Stores.over(db)
        customer = stores.customers.create(provisional=True, first_name="Ada", last_name="Okafor").id
        stores.messages.append(
            customer, Channel.WHATSAPP, Direction.INBOUND, "is my parcel coming?", sender="15550100145"
        )
        sent = stores.messages.append(customer, Channel.WHATSAPP, Direction.OUTBOUND, "It ships on Monday.")
        new = NewDelivery(
            idempotency_key=f"msg:{sent.id}:0",
            message_id=sent.id,
            customer_id=customer,
            channel=Channel.WHATSAPP,
            provider="whatsapp",
            recipient="15550100145",
            body=sent.text,
        )
        stores.outbox.enqueue(new)
        now = datetime.now(UTC)
        [claimed] = stores.outbox.claim("test-dispatcher", now=now, lease=timedelta(seconds=60))
        error = "131026: Message undeliverable"
        failed = stores.outbox.mark_failed(claimed.id, "test-dispatcher", error, state=DeliveryState.FAILED, now=now)
        assert failed is not None
        CaseRaiser(stores.handoffs, stores.customers)(failed)  # what the dispatcher does with a failed delivery
        handoff = stores.handoffs.open_for_customer(customer)
        assert handoff is not None
    finally:
        db.dispose()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = _signed_in(browser, live_server, width=1440)
            item = page.locator(f'[data-testid="queue-item"][data-handoff="{handoff.id}"]')
            expect(item.get_by_test_id("queue-delivery")).to_have_text("delivery failed")
            item.click()
            expect(page.get_by_test_id("case-delivery")).to_have_text("delivery failed")
            message = page.locator(f'[data-testid="timeline-message"][data-ref="message:{sent.id}"]')
            label = message.get_by_test_id("delivery-state")
            expect(label).to_have_text("failed")
            expect(label).to_have_attribute("title", error)
            window = page.get_by_test_id("whatsapp-window")
            expect(window).to_contain_text("Free-form reply: window open until ")
            expect(window).to_have_attribute("data-applies", "text")
            page.get_by_test_id("case").screenshot(path=str(REPORTS / "console-delivery-failed.png"))
            assert problems == []
        finally:
            browser.close()


LONG_QUESTION = (
    "does the warranty on a refurbished espresso machine bought as a gift for my sister also cover descaling damage "
    "from hard water"
)


def _fact_boxes(page: Any, label: str) -> dict[str, float]:
    """The rendered sizes of the known fact whose label contains `label`: its label's box, its value's text (the
    box its lines fill) and the list."""
    sizes: dict[str, float] = page.get_by_test_id("packet-facts").evaluate(
        """(card, label) => {
          const dt = [...card.querySelectorAll("dt")].find((d) => d.textContent.includes(label));
          const dd = dt.nextElementSibling, list = dt.parentElement, text = document.createRange();
          text.selectNodeContents(dd);
          const [t, d, l] = [dt, text, list].map((e) => e.getBoundingClientRect());
          return { labelWidth: t.width, valueWidth: d.width, valueHeight: d.height, listWidth: l.width,
                   em: parseFloat(getComputedStyle(dd).fontSize) };
        }""",
        label,
    )
    return sizes


@pytest.mark.slow
def test_the_packet_keeps_long_facts_readable_and_shows_language_and_the_pending_action(live_server: str) -> None:
    """A verified customer asks a long question the knowledge base cannot answer (a fact with a long label), asks
    for a cancellation and then for a person instead of saying yes. At 1,400 and 1,920 px the fact's value keeps
    a readable width and a line or two (never a letter per line), and the packet shows the
    conversation's language and the cancellation still pending."""
    require_chromium()
    phone = "+15550100144"
    for text in ("sofia.rossi2645@example.com", LONG_QUESTION, "cancel #W5918442 please, ordered by mistake"):
        assert httpx.post(
            f"{live_server}/v1/messages",
            json={"channel": "sms", "from": phone, "text": text},
            headers=CHANNEL,
            timeout=60,
        ).is_success
    body = {"channel": "sms", "from": phone, "text": "actually can i talk to a real person please"}
    escalated = httpx.post(f"{live_server}/v1/messages", json=body, headers=CHANNEL, timeout=60).json()
    assert escalated["owner"] == "queue"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = _signed_in(browser, live_server, width=1400)
            page.locator(f'[data-testid="queue-item"][data-handoff="{escalated["handoff_id"]}"]').click()

            expect(page.get_by_test_id("packet-language")).to_have_text("Language: English")
            pending = page.get_by_test_id("packet-pending-action")
            expect(pending).to_contain_text("#W5918442")
            expect(pending).to_contain_text("ordered by mistake")
            expect(pending).to_contain_text("Not done")
            expect(page.get_by_test_id("next-steps")).to_contain_text("Greet Sofia Rossi")
            expect(page.get_by_test_id("case-sub")).to_contain_text("LTV $")
            expect(page.get_by_test_id("packet-facts")).to_contain_text("no answer in the knowledge base")
            for width in (1400, 1920):
                page.set_viewport_size({"width": width, "height": 900})
                sizes = _fact_boxes(page, "espresso machine")
                assert sizes["valueWidth"] >= 8 * sizes["em"], (width, sizes)  # a dozen characters or more
                assert sizes["valueHeight"] <= 3.5 * sizes["em"], (width, sizes)  # a line or two
                assert sizes["labelWidth"] <= 0.5 * sizes["listWidth"], (width, sizes)
                page.get_by_test_id("packet-facts").screenshot(path=str(REPORTS / f"console-facts-{width}.png"))
            page.get_by_test_id("packet").screenshot(path=str(REPORTS / "console-packet.png"))
            assert problems == []
        finally:
            browser.close()
