"""`/demo`: the customer chat page. A real browser (Chromium via Playwright) holds a conversation on the web, switches
to SMS, and sees the continuity in the reply; the page's endpoint validates its input and exists only in demo mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect, sync_playwright

from tests.live import CHROMIUM, CHROMIUM_ARGS, require_chromium, serve
from threadline.api.app import create_app
from threadline.core.settings import Settings
from threadline.demo.loader import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
JAMES = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())["james_li_5688"]
REPLY_TIMEOUT_MS = 60_000

# The page is backend-independent: SQLite is enough.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def demo_client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=True)  # already loaded: no reload
    with TestClient(create_app(settings)) as client:
        yield client


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


def test_the_demo_page_is_absent_outside_demo_mode(demo_db_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/demo").status_code == 404
        assert client.get("/demo/static/demo.js").status_code == 404
        assert client.post("/demo/messages", json={}).status_code == 404


# --- the browser ----------------------------------------------------------------------------------------------


@pytest.fixture
def live_server(demo_db_url: str, tmp_path: Path) -> Iterator[str]:
    """The app over the demo database, served on a free local port from a background thread."""
    with serve(
        create_app(Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=True)), "demo-server"
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
            send(phone, "hello?")
            expect(phone.get_by_test_id("note")).to_contain_text(["a person will answer"], timeout=REPLY_TIMEOUT_MS)
            expect(phone.get_by_test_id("reply")).to_have_count(1)
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            phone.screenshot(path=str(REPORTS / "demo-375.png"))
            assert not problems, problems
        finally:
            browser.close()
