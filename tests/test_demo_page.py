"""`/demo`: the customer chat page. A real browser (Chromium via Playwright) holds a conversation on the web, switches
to SMS, and sees the continuity in the reply; the page's endpoint validates its input, is served only when switched
on and on loopback, and speaks only as fiction: demo personas, fictional numbers, visitor ids of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect, sync_playwright

from tests.live import CHROMIUM, CHROMIUM_ARGS, require_chromium, serve
from threadline.api.app import create_app
from threadline.conversations.desk import QUEUE_TIMEOUT_TEXT
from threadline.core.settings import Settings
from threadline.core.types import Channel, CustomerId, HandleType, InboundMessage
from threadline.demo.loader import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
JAMES = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())["james_li_5688"]
REPLY_TIMEOUT_MS = 60_000

# The page is backend-independent: SQLite is enough.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def demo_client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, demo_page=True)  # already loaded: no reload
    with TestClient(create_app(settings)) as client:
        yield client


def _post(client: TestClient, **change: str) -> Any:
    body = {"channel": "web", "identity": "visitor", "text": "hi", "visitor_id": "visitor-0123456789ab", **change}
    return client.post("/demo/messages", json=body)


def test_the_page_and_its_assets_are_served_outside_the_openapi_description(demo_client: TestClient) -> None:
    page = demo_client.get("/demo")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "The Threadline Demo Store" in page.text
    for testid in ("channel-web", "channel-sms", "channel-email", "channel-voice", "identity", "composer-input"):
        assert f'data-testid="{testid}"' in page.text
    assert demo_client.get("/demo/static/demo.js").status_code == 200
    assert demo_client.get("/demo/static/demo.css").status_code == 200
    assert not [path for path in demo_client.get("/openapi.json").json()["paths"] if path.startswith("/demo")]


def test_the_demo_endpoint_answers_as_the_chosen_identity(demo_client: TestClient) -> None:
    body = {
        "channel": "web",
        "identity": "signed-in:james_li_5688",
        "text": "where is my order #W2611340?",
        "visitor_id": "visitor-0123456789ab",
    }
    response = demo_client.post("/demo/messages", json=body)
    assert response.status_code == 200, response.json()
    answer = response.json()
    assert answer["tools"] == [{"name": "lookup_order", "args": {"order_id": "#W2611340"}}]
    assert answer["owner"] == "ai"
    assert answer["customer_name"] == "James Li"
    assert answer["sender"] == JAMES["email"]
    assert "processed" in answer["reply"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"identity": "nobody"}, "nobody"),  # unknown preset
        ({"channel": "fax"}, "channel"),
        ({"identity": "phone"}, "cannot send on Web chat"),  # a preset on a channel it does not speak
        ({"text": "x" * 1001}, "text"),
        ({"text": "   "}, "empty"),
        ({"visitor_id": "<script>"}, "visitor_id"),
        ({"channel": "sms", "identity": "phone", "phone": "call me"}, "phone number"),
        ({"sender": "james.li4495@example.com"}, "sender"),  # no smuggled fields
    ],
)
def test_bad_demo_messages_get_the_products_422(demo_client: TestClient, change: dict[str, str], field: str) -> None:
    body = {"channel": "web", "identity": "visitor", "text": "hi", "visitor_id": "visitor-0123456789ab", **change}
    response = demo_client.post("/demo/messages", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in error["message"]


@pytest.mark.parametrize("load_demo", [True, False])
def test_the_demo_page_is_absent_unless_switched_on(demo_db_url: str, tmp_path: Path, load_demo: bool) -> None:
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=load_demo)  # the defaults otherwise
    with TestClient(create_app(settings)) as client:
        assert client.get("/demo").status_code == 404
        assert client.get("/demo/static/demo.js").status_code == 404
        assert client.post("/demo/messages", json={}).status_code == 404


@pytest.mark.parametrize("phone", ["+1 415 555 2671", "+15550100200", "+44 20 7946 0958"])
def test_the_phone_preset_speaks_only_from_fictional_numbers(demo_client: TestClient, phone: str) -> None:
    response = _post(demo_client, channel="sms", identity="phone", phone=phone)
    assert response.status_code == 422
    assert "fictional numbers" in response.json()["error"]["message"]
    assert _post(demo_client, channel="sms", identity="phone", phone="+1 555 010 0142").status_code == 200


def test_signing_in_never_merges_a_visitor_the_page_did_not_create(demo_client: TestClient) -> None:
    services = demo_client.app.state.services  # type: ignore[attr-defined]
    real = services.turns.handle(InboundMessage(channel=Channel.WEB, sender="visitor-0123456789ab", text="hi"))
    answer = _post(demo_client, identity="signed-in:james_li_5688", text="hello", visitor_id="visitor-0123456789ab")
    assert answer.status_code == 200
    visitor = services.stores.customers.get(CustomerId(real.customer_id))
    assert visitor is not None and visitor.merged_into is None  # the real site's visitor stays who it was
    handle = services.stores.customers.find_by_handle(HandleType.VISITOR, "visitor-0123456789ab")
    assert handle is not None and handle.customer_id == real.customer_id


def test_one_browser_is_rate_limited_like_any_sender(demo_db_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, demo_page=True, rate_per_sender_per_minute=3)
    with TestClient(create_app(settings)) as client:
        codes = [_post(client, visitor_id=f"visitor-rotating-{i:04d}").status_code for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]  # a new visitor id per message is still one browser
        limited = _post(client, visitor_id="visitor-rotating-9999")
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1


# --- what reaches the customer between turns ----------------------------------------------------------------

AGENT_KEY = "demo-page-agent-key-0001"
AGENT = {"Authorization": f"Bearer {AGENT_KEY}"}
ASK_FOR_A_PERSON = "I'd like to speak to a person, please"
AGENT_TEXT = "Hi, this is Sam from the support team. Your parcel left our warehouse this morning."


@pytest.fixture
def desk_client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The demo page, and an agent key for the handoff API."""
    settings = Settings(
        data_dir=tmp_path, database_url=demo_db_url, demo_page=True, bootstrap_keys=f"agent:{AGENT_KEY}"
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _updates(client: TestClient, visitor_id: str, after: int, *speakers: dict[str, str]) -> Any:
    body = {
        "visitor_id": visitor_id,
        "after": after,
        "speakers": list(speakers or [{"channel": "web", "identity": "visitor"}]),
    }
    response = client.post("/demo/updates", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_agents_reply_reaches_the_visitor_it_was_written_to_and_no_one_else(desk_client: TestClient) -> None:
    asked = _post(desk_client, text=ASK_FOR_A_PERSON, visitor_id="visitor-aaaaaaaaaaaa").json()
    assert asked["owner"] == "queue" and asked["handoff_id"] and asked["reply"]  # the queue's acknowledgement
    other = _post(desk_client, text="what is your return policy?", visitor_id="visitor-bbbbbbbbbbbb").json()
    assert other["owner"] == "ai"
    # Nothing between turns yet: the acknowledgement came with the turn, so polling does not repeat it.
    assert _updates(desk_client, "visitor-aaaaaaaaaaaa", 0)["messages"] == []

    handoff = asked["handoff_id"]
    assert desk_client.post(f"/v1/handoffs/{handoff}/claim", headers=AGENT).status_code == 200
    assert _updates(desk_client, "visitor-aaaaaaaaaaaa", asked["cursor"])["owner"] == "human"
    sent = desk_client.post(f"/v1/handoffs/{handoff}/reply", json={"text": AGENT_TEXT}, headers=AGENT)
    assert sent.status_code == 200, sent.text

    news = _updates(desk_client, "visitor-aaaaaaaaaaaa", asked["cursor"])
    assert [(m["author"], m["channel"], m["text"]) for m in news["messages"]] == [("agent", "web", AGENT_TEXT)]
    assert news["owner"] == "human" and news["cursor"] == sent.json()["message_id"]
    assert _updates(desk_client, "visitor-aaaaaaaaaaaa", news["cursor"])["messages"] == []  # shown once
    # Another browser, even polling from the very beginning, sees none of it.
    elsewhere = _updates(desk_client, "visitor-bbbbbbbbbbbb", 0)
    assert elsewhere == {"messages": [], "owner": "ai", "cursor": 0}

    # The case goes back to the AI: the page learns it, and the AI answers the visitor again.
    released = desk_client.post(f"/v1/handoffs/{handoff}/release", json={"note": "told them"}, headers=AGENT)
    assert released.status_code == 200
    assert _updates(desk_client, "visitor-aaaaaaaaaaaa", news["cursor"]) == {
        "messages": [],
        "owner": "ai",
        "cursor": news["cursor"],
    }
    again = _post(desk_client, text="what is your return policy?", visitor_id="visitor-aaaaaaaaaaaa").json()
    assert again["owner"] == "ai" and "(Source: Returns.)" in again["reply"]


def test_a_quiet_visitor_whose_case_waited_too_long_gets_the_desks_notice(demo_db_url: str, tmp_path: Path) -> None:
    keys = f"agent:{AGENT_KEY}"
    settings = Settings(
        data_dir=tmp_path, database_url=demo_db_url, demo_page=True, bootstrap_keys=keys, queue_timeout_minutes=0.0001
    )
    with TestClient(create_app(settings)) as client:
        asked = _post(client, text=ASK_FOR_A_PERSON, visitor_id="visitor-cccccccccccc").json()
        assert asked["owner"] == "queue"
        assert client.get("/v1/handoffs", headers=AGENT).status_code == 200  # the queue is looked at: too late
        news = _updates(client, "visitor-cccccccccccc", asked["cursor"])
        assert [(m["author"], m["text"]) for m in news["messages"]] == [("notice", QUEUE_TIMEOUT_TEXT)]
        assert news["owner"] == "queue"


def test_polling_reads_only_conversations_the_page_could_speak_in(desk_client: TestClient) -> None:
    services = desk_client.app.state.services  # type: ignore[attr-defined]
    # A real site's visitor, whose id a browser happens to know, is handed off and gets an agent's reply.
    real = services.turns.handle(
        InboundMessage(channel=Channel.WEB, sender="visitor-0123456789ab", text=ASK_FOR_A_PERSON)
    )
    assert real.handoff_id is not None
    services.desk.claim(real.handoff_id, "agent:ana")
    services.desk.agent_reply(real.handoff_id, "agent:ana", "Ana here, about your private order.")
    # The page speaks as `demo-page-<id>`, never as the real visitor: nothing of theirs comes back.
    assert _updates(desk_client, "visitor-0123456789ab", 0) == {"messages": [], "owner": "ai", "cursor": 0}
    # Speakers are presets checked as when sending: no real numbers, no unknown presets, no smuggled handles.
    body = {"visitor_id": "visitor-0123456789ab", "after": 0}
    for speakers, expected in [
        ([{"channel": "sms", "identity": "phone", "phone": "+1 415 555 2671"}], "fictional numbers"),
        ([{"channel": "web", "identity": "nobody"}], "nobody"),
        ([{"channel": "web", "identity": "visitor", "sender": "visitor-0123456789ab"}], "sender"),
        ([], "speakers"),
        ([{"channel": "web", "identity": "visitor"}] * 9, "speakers"),
    ]:
        refused = desk_client.post("/demo/updates", json={**body, "speakers": speakers})
        assert refused.status_code == 422 and expected in refused.json()["error"]["message"], refused.text


# --- the browser ----------------------------------------------------------------------------------------------


@pytest.fixture
def live_server(demo_db_url: str, tmp_path: Path) -> Iterator[str]:
    """The app over the demo database, served on a free local port from a background thread."""
    with serve(
        create_app(Settings(data_dir=tmp_path, database_url=demo_db_url, demo_page=True)), "demo-server"
    ) as base:
        yield base


@pytest.mark.slow
def test_a_web_conversation_continues_over_sms_in_the_browser(live_server: str) -> None:
    require_chromium()
    REPORTS.mkdir(exist_ok=True)

    def send(page: Page, text: str, *, press_enter: bool = True) -> None:
        box = page.get_by_test_id("composer-input")
        box.fill(text)
        if press_enter:
            box.press("Enter")
        else:
            page.get_by_test_id("send").click()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{live_server}/demo")
            expect(page.locator("body[data-ready=true]")).to_have_count(1)
            expect(page.get_by_test_id("store-name")).to_have_text("The Threadline Demo Store")
            replies = page.get_by_test_id("reply")

            # Web chat, signed in as James Li: ask about an order.
            page.get_by_test_id("channel-web").click()
            page.get_by_test_id("identity").select_option(label="Signed in as James Li")
            send(page, "where is my order #W2611340?")
            expect(replies).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
            expect(replies.nth(0)).to_contain_text("#W2611340")
            expect(replies.nth(0)).to_contain_text("processed")  # the status from the order data
            web_reply = page.locator('[data-role="assistant"]').nth(0)
            expect(web_reply).to_have_attribute("data-channel", "web")
            expect(web_reply.get_by_test_id("tool-chip")).to_contain_text(["lookup_order"])
            expect(web_reply.get_by_test_id("filed-under")).to_have_text("Conversation on file as James Li")

            # Switch to SMS from an unknown phone number: verify, which joins the conversations.
            page.get_by_test_id("channel-sms").click()
            page.get_by_test_id("identity").select_option(label="Texting/calling from a phone")
            expect(page.get_by_test_id("phone")).to_be_visible()
            expect(page.get_by_test_id("phone")).to_have_value("+1 555 010 0199")
            send(page, f"I'm James Li, my email is {JAMES['email']}", press_enter=False)
            expect(replies).to_have_count(2, timeout=REPLY_TIMEOUT_MS)
            expect(replies.nth(1)).to_contain_text("verified")
            send(page, "what did we talk about on the web chat?")
            expect(replies).to_have_count(3, timeout=REPLY_TIMEOUT_MS)

            # Continuity: the SMS reply recalls the web chat and its order.
            continuity = page.locator('[data-role="assistant"]').nth(2)
            expect(continuity).to_have_attribute("data-channel", "sms")
            expect(replies.nth(2)).to_contain_text("web chat")
            expect(replies.nth(2)).to_contain_text("#W2611340")
            expect(continuity.get_by_test_id("tool-chip")).to_contain_text(["recall_context"])
            expect(page.locator('[data-role="assistant"]').nth(1).get_by_test_id("tool-chip")).to_contain_text(
                ["verify_customer"]
            )
            expect(page.get_by_test_id("channel-divider")).to_have_count(2)  # web, then SMS
            expect(page.get_by_test_id("handoff-banner")).to_be_hidden()
            page.screenshot(path=str(REPORTS / "demo.png"))

            # A phone-sized screen: the same page, no sideways scrolling; asking for a person silences the AI.
            phone = browser.new_page(viewport={"width": 375, "height": 740})
            phone.on("pageerror", lambda error: problems.append(str(error)))
            phone.goto(f"{live_server}/demo")
            expect(phone.locator("body[data-ready=true]")).to_have_count(1)
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            send(phone, "I'd like to speak to a person, please")
            expect(phone.get_by_test_id("reply")).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
            expect(phone.get_by_test_id("handoff-banner")).to_be_visible()
            expect(phone.get_by_test_id("handoff-banner")).to_contain_text("the assistant is silent")
            send(phone, "hello?")  # the desk's one note that it reached the team, not the AI answering the case
            expect(phone.get_by_test_id("reply")).to_have_count(2, timeout=REPLY_TIMEOUT_MS)
            expect(phone.get_by_test_id("reply").nth(1)).to_contain_text("added this to your case")
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            phone.screenshot(path=str(REPORTS / "demo-375.png"))
            assert not problems, problems
        finally:
            browser.close()


@pytest.fixture
def live_desk(demo_db_url: str, tmp_path: Path) -> Iterator[str]:
    """The app with the demo page and an agent key, served on a free local port."""
    settings = Settings(
        data_dir=tmp_path, database_url=demo_db_url, demo_page=True, bootstrap_keys=f"agent:{AGENT_KEY}"
    )
    with serve(create_app(settings), "demo-desk-server") as base:
        yield base


@pytest.mark.slow
def test_an_agents_reply_appears_in_the_customers_conversation_in_the_browser(live_desk: str) -> None:
    require_chromium()
    REPORTS.mkdir(exist_ok=True)
    agent = httpx.Client(base_url=live_desk, headers=AGENT, timeout=30)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{live_desk}/demo")
            expect(page.locator("body[data-ready=true]")).to_have_count(1)
            replies, banner = page.get_by_test_id("reply"), page.get_by_test_id("handoff-banner")

            def send(text: str) -> None:
                page.get_by_test_id("composer-input").fill(text)
                page.get_by_test_id("composer-input").press("Enter")

            # An anonymous visitor asks for a person: the assistant says so and goes quiet; the case waits.
            send(ASK_FOR_A_PERSON)
            expect(replies).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
            expect(replies.nth(0)).to_contain_text("passed your conversation to a member of our team")
            expect(banner).to_contain_text("Waiting for a person from our team")

            # An agent takes the case from the queue and writes through the agent API.
            queued = agent.get("/v1/handoffs", params={"status": "queued"}).json()
            assert len(queued) == 1 and queued[0]["channel"] == "web", queued
            handoff = queued[0]["id"]
            assert agent.post(f"/v1/handoffs/{handoff}/claim").status_code == 200
            expect(page.get_by_test_id("note").last).to_have_text(
                "A person from our team joined the conversation.", timeout=REPLY_TIMEOUT_MS
            )
            expect(banner).to_contain_text("A person from our team has the case")
            assert agent.post(f"/v1/handoffs/{handoff}/reply", json={"text": AGENT_TEXT}).status_code == 200

            # It appears in the visitor's conversation without a reload, from the support team, not the assistant.
            said = page.locator('[data-role="agent"]')
            expect(said).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
            expect(said.get_by_test_id("agent-reply")).to_have_text(AGENT_TEXT)
            expect(said.get_by_test_id("who")).to_have_text("Support team")
            expect(said).to_have_attribute("data-channel", "web")
            expect(replies).to_have_count(1)  # the assistant said nothing more

            # The visitor answers the person; the agent sees it on the case, then resolves it.
            send("Thanks Sam! Can you tell me the tracking number?")
            expect(page.get_by_test_id("note").last).to_contain_text("a person will answer", timeout=REPLY_TIMEOUT_MS)
            events = agent.get(f"/v1/handoffs/{handoff}").json()["events"]
            heard = [e["payload"]["text"] for e in events if e["kind"] == "customer_message"]
            assert heard == ["Thanks Sam! Can you tell me the tracking number?"], events
            page.screenshot(path=str(REPORTS / "demo-agent-reply.png"))
            assert agent.post(f"/v1/handoffs/{handoff}/resolve").status_code == 200
            expect(page.get_by_test_id("note").last).to_contain_text(
                "handed the conversation back to the assistant", timeout=REPLY_TIMEOUT_MS
            )
            expect(banner).to_be_hidden()

            # The assistant answers again.
            send("What is your return policy?")
            expect(replies).to_have_count(2, timeout=REPLY_TIMEOUT_MS)
            expect(replies.nth(1)).to_contain_text("Returns")
            expect(page.locator('[data-role="agent"]')).to_have_count(1)  # shown once, not again on every poll

            # A reload keeps the conversation, the agent's reply once.
            page.reload()
            expect(page.locator("body[data-ready=true]")).to_have_count(1)
            expect(page.get_by_test_id("agent-reply")).to_have_count(1)
            assert not problems, problems
        finally:
            browser.close()
            agent.close()
