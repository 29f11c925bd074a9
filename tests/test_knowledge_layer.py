"""The knowledge layer as customers and editors meet it: one source of truth, versions, channels, notices."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from threadline.api.app import create_app
from threadline.core.settings import Settings
from threadline.core.types import Channel, HandleType, InboundMessage, TurnOutcome, VerificationLevel
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.graphs.render import sms_segments
from threadline.product.services import Services

ADMIN_KEY = "admin-key-for-tests-00001"
AGENT_KEY = "agent-key-for-tests-00001"
USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
JAMES = USERS["james_li_5688"]  # ordered an Office Chair (#W2611340)
OFFICE_CHAIR = "4794339885"
NOTICE = {
    "id": "notice-office-chair-delay",
    "kind": "product_notice",
    "title": "The Office Chair ships 3 weeks late",
    "body": "Our supplier is behind schedule. Orders already placed keep their price.",
    "product_ids": [OFFICE_CHAIR],
}


@pytest.fixture
def client(demo_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    keys = f"admin:{ADMIN_KEY},agent:{AGENT_KEY}"
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False, bootstrap_keys=keys)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


def services_of(client: TestClient) -> Services:
    services = client.app.state.services  # type: ignore[attr-defined]
    assert isinstance(services, Services)
    return services


def say(client: TestClient, channel: Channel, sender: str, text: str, vouched: bool = False) -> TurnOutcome:
    message = InboundMessage(channel=channel, sender=sender, text=text, vouched=vouched)
    return services_of(client).turns.handle(message)


def article(**fields: Any) -> dict[str, Any]:
    return {"kind": "faq", "title": "Gift wrapping", "body": "We gift wrap any order for $5.", **fields}


def test_articles_are_versioned_and_old_versions_stay_readable(client: TestClient) -> None:
    created = client.post("/v1/knowledge/articles", json=article(id="faq-gift-wrap"))
    assert created.status_code == 201
    assert created.json()["version"] == 1
    assert client.post("/v1/knowledge/articles", json=article(id="faq-gift-wrap")).status_code == 409
    updated = client.put("/v1/knowledge/articles/faq-gift-wrap", json=article(body="Gift wrapping is free."))
    assert updated.json()["version"] == 2
    assert client.get("/v1/knowledge/articles/faq-gift-wrap/versions/1").json()["body"].startswith("We gift wrap")
    assert [v["version"] for v in client.get("/v1/knowledge/articles/faq-gift-wrap/versions").json()] == [1, 2]
    assert client.put("/v1/knowledge/articles/nope", json=article()).status_code == 404
    bad = client.post("/v1/knowledge/articles", json=article(id="x", kind="rumour"))
    assert bad.status_code == 422


def test_a_retired_article_is_never_returned(client: TestClient) -> None:
    client.post("/v1/knowledge/articles", json=article(id="faq-gift-wrap"))
    hits = client.get("/v1/knowledge/search", params={"q": "can you gift wrap my order?"}).json()
    assert hits[0]["article_id"] == "faq-gift-wrap"
    retired = client.post("/v1/knowledge/articles/faq-gift-wrap/retire").json()
    assert retired["status"] == "retired"
    assert retired["version"] == 2
    hits = client.get("/v1/knowledge/search", params={"q": "can you gift wrap my order?", "k": 20}).json()
    assert "faq-gift-wrap" not in {h["article_id"] for h in hits}
    outcome = say(client, Channel.WEB, "visitor-1", "Can you gift wrap my order?")
    assert "Source: Gift wrapping" not in (outcome.reply or "")


def test_a_channel_scoped_article_is_not_used_on_other_channels(client: TestClient) -> None:
    scoped = article(
        id="sms-alerts", title="Text alerts", body="Reply STOP to end order text alerts.", channels=["sms"]
    )
    client.post("/v1/knowledge/articles", json=scoped)
    question = "How do I stop the order text alerts?"
    on_sms = client.get("/v1/knowledge/search", params={"q": question, "channel": "sms"}).json()
    on_web = client.get("/v1/knowledge/search", params={"q": question, "channel": "web", "k": 20}).json()
    assert on_sms[0]["article_id"] == "sms-alerts"
    assert "sms-alerts" not in {h["article_id"] for h in on_web}
    assert "STOP" in (say(client, Channel.SMS, "+15550100500", question).reply or "")
    assert "STOP" not in (say(client, Channel.WEB, "visitor-2", question).reply or "")


def test_answers_cite_the_version_they_used_and_the_episode_records_it(client: TestClient) -> None:
    question = "What is your policy on returning delivered items?"
    first = say(client, Channel.WEB, JAMES["email"], question, vouched=True)
    assert "(Source: Returns.)" in (first.reply or "")  # the customer's help center, never the agent policy
    returns = client.get("/v1/knowledge/articles/help-returns").json()
    new_body = (
        "## Can I return a delivered order?\n\n"
        "Delivered orders can be returned within 60 days for a full refund to the original payment method.\n"
    )
    fields = {k: returns[k] for k in ("kind", "audience", "title", "tags", "product_ids")}
    client.put("/v1/knowledge/articles/help-returns", json={**fields, "body": new_body})
    second = say(client, Channel.WEB, JAMES["email"], question, vouched=True)
    assert "60 days" in (second.reply or "")
    episode = services_of(client).stores.episodes.current(demo_customer_id("james_li_5688"))
    assert episode is not None
    assert {"help-returns@v1", "help-returns@v2"} <= set(episode.citations)


def test_product_information_is_knowledge(client: TestClient) -> None:
    hits = client.get("/v1/knowledge/search", params={"q": "do you have the office chair in black?"}).json()
    assert f"product-{OFFICE_CHAIR}" in {h["article_id"] for h in hits[:3]}
    reply = say(client, Channel.WEB, "visitor-3", "Do you have the office chair in black?").reply or ""
    assert "black" in reply
    assert "Office Chair" in reply


def _verified_sender(client: TestClient, channel: Channel) -> tuple[str, bool]:
    """A sender handle for James on `channel`, verified the way that channel can be."""
    if channel is Channel.WEB:
        return JAMES["email"], True
    stores = services_of(client).stores
    handle_type, handle = (
        (HandleType.PHONE, "+15550100600") if channel is Channel.SMS else (HandleType.EMAIL, JAMES["email"])
    )
    stores.customers.link_identity(
        demo_customer_id("james_li_5688"), handle_type, handle, VerificationLevel.VERIFIED, actor="test"
    )
    return handle, False


@pytest.mark.parametrize("channel", [Channel.WEB, Channel.SMS, Channel.EMAIL])
def test_a_notice_reaches_an_affected_customer_once_per_episode_on_every_channel(
    client: TestClient, channel: Channel
) -> None:
    client.post("/v1/knowledge/articles", json=NOTICE)
    sender, vouched = _verified_sender(client, channel)
    first = say(client, channel, sender, "hi", vouched=vouched)
    assert "The Office Chair ships 3 weeks late. Our supplier is behind schedule." in (first.reply or "")
    if channel is Channel.SMS:
        assert sms_segments(first.reply or "") <= 2
    again = say(client, channel, sender, "thanks!", vouched=vouched)
    assert "ships 3 weeks late" not in (again.reply or "")
    episode = services_of(client).stores.episodes.current(demo_customer_id("james_li_5688"))
    assert episode is not None
    assert episode.notices == ["notice-office-chair-delay@v1"]


def test_a_notice_never_reaches_an_unaffected_customer(client: TestClient) -> None:
    client.post("/v1/knowledge/articles", json=NOTICE)
    unaffected = next(
        u["email"]
        for u in USERS.values()
        if not any("Office Chair" in json.dumps(o) for o in [])
        and u["email"] != JAMES["email"]
        and all(OFFICE_CHAIR not in json.dumps(_order(oid)) for oid in u["orders"])
    )
    for text in ["hi", "where are my orders?", "What is your policy on returning delivered items?"]:
        outcome = say(client, Channel.WEB, unaffected, text, vouched=True)
        assert "ships 3 weeks late" not in (outcome.reply or "")
    anonymous = say(client, Channel.WEB, "visitor-4", "hi")
    assert "ships 3 weeks late" not in (anonymous.reply or "")


def _order(order_id: str) -> dict[str, Any]:
    orders: dict[str, Any] = json.loads((DATA_DIR / "tau_retail" / "orders.json").read_text())
    return dict(orders[order_id])


def test_editing_needs_the_admin_key(client: TestClient) -> None:
    wrong = {"Authorization": "Bearer guessed"}
    assert client.post("/v1/knowledge/articles", json=article(id="x"), headers=wrong).status_code == 401
    assert client.post("/v1/knowledge/articles/policy-return-delivered-order/retire", headers=wrong).status_code == 401
    assert client.get("/v1/knowledge/articles", params={"status": "draft"}, headers=wrong).status_code == 401
    assert client.get("/v1/knowledge/articles", headers=wrong).status_code == 200  # published knowledge is public
    assert client.get("/v1/knowledge/articles/x").status_code == 404
    agent = {"Authorization": f"Bearer {AGENT_KEY}"}
    refused = client.put("/v1/knowledge/articles/policy-return-delivered-order", json=article(), headers=agent)
    assert refused.status_code == 403  # an agent key cannot edit the knowledge base
    assert client.get("/v1/knowledge/articles", params={"status": "draft"}, headers=agent).status_code == 403


def test_editing_over_http_is_off_without_a_configured_key(demo_db_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=demo_db_url, load_demo=False)
    with TestClient(create_app(settings)) as open_site:
        response = open_site.post("/v1/knowledge/articles", json=article(id="x"))
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["error"]["message"]


def test_without_a_key_only_published_customer_facing_articles_are_readable(client: TestClient) -> None:
    playbook = article(id="proc-2fa-reset", kind="procedure", title="Resetting two-factor sign-in for a customer")
    playbook["body"] = "Agents reset two-factor sign-in from the admin tool after checking the account email."
    assert client.post("/v1/knowledge/articles", json=playbook).status_code == 201
    draft = article(id="faq-gift-wrap-draft", status="draft", body="Gift wrapping will be free from May.")
    assert client.post("/v1/knowledge/articles", json=draft).status_code == 201
    question = {"q": "how do I reset two-factor sign-in?", "k": 50}
    anonymous, agent = {"Authorization": ""}, {"Authorization": f"Bearer {AGENT_KEY}"}
    for reader in (anonymous, {"Authorization": "Bearer guessed"}):  # a wrong key reads what anyone may read
        listed = {a["id"]: a["kind"] for a in client.get("/v1/knowledge/articles", headers=reader).json()}
        assert listed and "procedure" not in listed.values() and "faq-gift-wrap-draft" not in listed
        for path in ("proc-2fa-reset", "proc-2fa-reset/versions", "proc-2fa-reset/versions/1", "faq-gift-wrap-draft"):
            hidden = client.get(f"/v1/knowledge/articles/{path}", headers=reader)
            assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"  # reads as missing
        hits = client.get("/v1/knowledge/search", params=question, headers=reader).json()
        assert hits and all(h["kind"] != "procedure" and h["audience"] == "customer" for h in hits)
        # the store's own policy is written to its agents: customers read the help center instead
        agent_policy = client.get("/v1/knowledge/articles/policy-return-delivered-order", headers=reader)
        assert agent_policy.status_code == 404
        assert client.get("/v1/knowledge/articles/help-returns", headers=reader).json()["audience"] == "customer"
    staff = {a["id"] for a in client.get("/v1/knowledge/articles", headers=agent).json()}
    assert "proc-2fa-reset" in staff and "faq-gift-wrap-draft" not in staff  # drafts stay with admins
    assert client.get("/v1/knowledge/articles/proc-2fa-reset", headers=agent).status_code == 200
    policy = client.get("/v1/knowledge/articles/policy-return-delivered-order", headers=agent).json()
    assert policy["audience"] == "agent" and policy["kind"] == "policy"
    # an edit that does not name the audience keeps it: the agent policy never turns into customer text
    edit = {k: policy[k] for k in ("kind", "title", "tags", "product_ids")} | {"body": policy["body"] + "\nEdited.\n"}
    assert client.put("/v1/knowledge/articles/policy-return-delivered-order", json=edit).status_code == 200
    assert client.get("/v1/knowledge/articles/policy-return-delivered-order", headers=anonymous).status_code == 404
    assert client.get("/v1/knowledge/articles/faq-gift-wrap-draft", headers=agent).status_code == 404
    assert client.get("/v1/knowledge/articles/faq-gift-wrap-draft").status_code == 200  # the admin key
    found = client.get("/v1/knowledge/search", params=question, headers=agent).json()
    assert "proc-2fa-reset" in {h["article_id"] for h in found}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_anonymous_search_is_capped_and_rate_limited_and_leaves_no_trace_on_disk(
    demo_db_url: str, tmp_path: Path
) -> None:
    keys = f"admin:{ADMIN_KEY}"
    settings = Settings(
        data_dir=tmp_path,
        database_url=demo_db_url,
        load_demo=False,
        bootstrap_keys=keys,
        rate_anonymous_search_per_minute=3,
    )
    cache = settings.cache_path / "embeddings.sqlite"  # the run's shared cache: no test writes to it meanwhile
    with TestClient(create_app(settings)) as client:
        stored = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        long_query = "do you price match " + "x" * 600
        too_long = client.get("/v1/knowledge/search", params={"q": long_query})
        assert too_long.status_code == 422 and "500 characters" in too_long.json()["error"]["message"]
        unique = [f"can I return shoes I bought {n} days ago?" for n in range(4)]
        codes = [client.get("/v1/knowledge/search", params={"q": q}).status_code for q in unique]
        assert codes == [200, 200, 200, 429]  # one client address, three a minute here
        keyed = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert client.get("/v1/knowledge/search", params={"q": long_query}, headers=keyed).status_code == 200
        # Queries are embedded in memory only: the shared file does not grow with what people ask.
        assert sqlite3.connect(cache).execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == stored
