"""The disclosure matrix, level by level, against every tool: each tool is called for real, acting for James
on the demo store, and what its payload reveals is checked against `core.disclosure.may_see`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import ToolRuntime
from langgraph.types import Command

from tests.conftest import DatabaseFactory, PgDatabases, _template
from threadline.core.context import TurnContext, TurnServices
from threadline.core.disclosure import REQUIRED_LEVEL, Disclosure, may_see
from threadline.core.longterm import EPISODES, customer_namespace
from threadline.core.settings import Settings
from threadline.core.types import Channel, HandleType, InboundMessage, VerificationLevel
from threadline.demo.loader import DATA_DIR, demo_customer_id
from threadline.memory.longterm import SqlStore
from threadline.product.services import Services, open_services
from threadline.tools import escalate_to_human, lookup_order, recall_context, search_knowledge, verify_customer
from threadline.tools.orders import NOT_FOUND_MESSAGE
from threadline.tools.verification import FAILED_MESSAGE

USERS = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
ORDERS = json.loads((DATA_DIR / "tau_retail" / "orders.json").read_text())
JAMES = USERS["james_li_5688"]
JAMES_ID = demo_customer_id("james_li_5688")
ORDER = ORDERS["#W2611340"]
NOAHS_ORDER = ORDERS["#W7678072"]
assert ORDER["user_id"] == "james_li_5688"
assert NOAHS_ORDER["user_id"] == "noah_brown_6181"

LEVELS = list(VerificationLevel)
ORDER_QUESTION = f"where is my order {ORDER['order_id']}?"
KNOWLEDGE_QUESTION = "how long does standard shipping take?"
"""James's earlier public question: a topic `claimed` may hear of, unlike the order asked about before it."""


def fragment(text: str) -> str:
    """`text` as it appears inside a JSON string."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


@dataclass
class World:
    """James's demo store after two real turns, and a way to call a tool for him at any level."""

    services: Services
    turn_services: TurnServices
    store: SqlStore
    episode: dict[str, Any]

    def run(
        self,
        tool: BaseTool,
        level: VerificationLevel,
        args: dict[str, Any],
        *,
        user: str = "james_li_5688",
        with_store: bool = True,
        state: dict[str, Any] | None = None,
    ) -> tuple[ToolMessage, dict[str, Any]]:
        """Call `tool` acting for a demo user (James) at `level`: its ToolMessage and the rest of its update."""
        customer_id = demo_customer_id(user)
        context = TurnContext(
            customer_id=customer_id,
            verification=level,
            channel=Channel.WEB,
            handle_type=HandleType.EMAIL,
            handle=USERS[user]["email"],
            services=self.turn_services,
        )
        runtime: ToolRuntime[Any, Any] = ToolRuntime(
            state={"messages": [], "identity": {"customer_id": customer_id, "level": level.value}, **(state or {})},
            context=context,
            config={},
            stream_writer=lambda _: None,
            tool_call_id="call-1",
            store=self.store if with_store else None,
        )
        assert isinstance(tool, StructuredTool)
        assert tool.func is not None
        command = tool.func(runtime=runtime, **args)  # the function under @tool, with the runtime passed in
        assert isinstance(command, Command)
        update = dict(command.update)  # type: ignore[arg-type]
        [message] = update.pop("messages")
        assert isinstance(message, ToolMessage)
        assert message.name == tool.name
        assert message.tool_call_id == "call-1"
        assert isinstance(message.artifact, dict)
        assert json.loads(str(message.content)) == json.loads(json.dumps(message.artifact, default=str))
        return message, update


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, pg: PgDatabases, tmp_path_factory: pytest.TempPathFactory, embeddings: Embeddings
) -> Iterator[World]:
    """One demo store per backend for the whole module (a copy of the suite's demo template, as `demo_db_url`
    makes): the tools under test only read it, and the one test that runs more turns runs them for Noah."""
    backend = str(request.param)
    templates = tmp_path_factory.getbasetemp() / "templates"
    templates.mkdir(exist_ok=True)
    data_dir = tmp_path_factory.mktemp(f"disclosure-{backend}")
    url = DatabaseFactory(backend, pg, data_dir).copy_url(_template("demo", backend, pg, templates))
    services = open_services(Settings(data_dir=data_dir, database_url=url, load_demo=False))
    try:
        # Two real turns leave James an episode record: an order question, then a public knowledge question.
        for text in (ORDER_QUESTION, KNOWLEDGE_QUESTION):
            services.turns.handle(InboundMessage(channel=Channel.WEB, sender=JAMES["email"], text=text, vouched=True))
        store = SqlStore(services.db, embeddings)
        [record] = store.search(customer_namespace(JAMES_ID, EPISODES))
        turn_services = services.turns.services
        assert isinstance(turn_services, TurnServices)
        yield World(services, turn_services, store, record.value)
    finally:
        services.close()


def test_real_turns_leave_an_episode_record_with_public_topics_apart_from_private_orders(world: World) -> None:
    episode = world.episode
    assert episode["orders"] == [ORDER["order_id"]]
    assert [topic["question"] for topic in episode["topics"]] == [KNOWLEDGE_QUESTION]
    assert episode["topics"][0]["answered"] is True
    assert ORDER["order_id"] in episode["summary"]
    assert all(ORDER["order_id"] not in json.dumps(topic) for topic in episode["topics"])


# -- the matrix -------------------------------------------------------------------------------------------------


def markers(episode: dict[str, Any]) -> dict[Disclosure, list[str]]:
    """JSON fragments that would reveal each kind of James's information."""
    tracking = [t for f in ORDER["fulfillments"] for t in f["tracking_id"]]
    return {
        Disclosure.OWN_ORDER_STATUS: [
            f'"status": "{ORDER["status"]}"',
            *tracking,
            *(fragment(item["name"]) for item in ORDER["items"]),
        ],
        Disclosure.ADDRESS: [fragment(JAMES["address"]["address1"]), fragment(JAMES["address"]["address2"])],
        Disclosure.PAYMENT_DETAILS: sorted({p["payment_method_id"] for p in ORDER["payment_history"]}),
        Disclosure.PRIOR_CONVERSATIONS: [
            ORDER["order_id"],
            *(fragment(line) for line in episode["summary"].splitlines()),
            fragment(episode["outcome"]),
        ],
        Disclosure.PRIOR_TOPICS: [fragment(KNOWLEDGE_QUESTION)],
    }


@dataclass(frozen=True)
class Call:
    """One tool call of the matrix: what it shows when allowed, and what it needs to answer at all."""

    label: str
    tool: BaseTool
    args: dict[str, Any]
    shows: frozenset[Disclosure] = frozenset()
    """Kinds the call must reveal (some marker of) at every level allowed to see them: the matrix is not vacuous."""
    gate: Disclosure | None = None
    """Below this kind's level the call refuses with `verification_required`."""
    with_store: bool = True


CALLS = [
    Call(
        "lookup_order-one",
        lookup_order,
        {"order_id": ORDER["order_id"]},
        frozenset({Disclosure.OWN_ORDER_STATUS, Disclosure.ADDRESS, Disclosure.PAYMENT_DETAILS}),
        gate=Disclosure.OWN_ORDER_STATUS,
    ),
    Call(
        "lookup_order-history",
        lookup_order,
        {},
        frozenset({Disclosure.OWN_ORDER_STATUS}),
        gate=Disclosure.OWN_ORDER_STATUS,
    ),
    Call(
        "recall_context-store",
        recall_context,
        {"query": "my order"},
        frozenset({Disclosure.PRIOR_TOPICS, Disclosure.PRIOR_CONVERSATIONS}),
        gate=Disclosure.PRIOR_TOPICS,
    ),
    Call(
        "recall_context-episode_rows",
        recall_context,
        {"query": "my order"},
        frozenset({Disclosure.PRIOR_CONVERSATIONS}),
        gate=Disclosure.PRIOR_TOPICS,
        with_store=False,
    ),
    Call("search_knowledge", search_knowledge, {"query": "what is the return policy"}),
    Call("verify_customer-wrong_email", verify_customer, {"email": "james.li@example.invalid"}),
    Call("escalate_to_human", escalate_to_human, {"reason": "the customer asked for a person"}),
]


@pytest.mark.parametrize("level", LEVELS, ids=str)
@pytest.mark.parametrize("call", CALLS, ids=lambda call: call.label)
def test_a_tool_reveals_each_kind_of_information_only_at_the_levels_that_may_see_it(
    world: World, call: Call, level: VerificationLevel
) -> None:
    message, _ = world.run(call.tool, level, call.args, with_store=call.with_store)
    content = str(message.content)
    violations: list[str] = []
    for kind, fragments in markers(world.episode).items():
        shown = [m for m in fragments if m in content]
        if shown and not may_see(level, kind):
            violations.append(f"reveals {kind}: {shown}")
        if kind in call.shows and may_see(level, kind) and not shown:
            violations.append(f"shows no {kind} though {level} may see it")
    refused = message.artifact["status"] == "verification_required"
    if call.gate is not None and not may_see(level, call.gate):
        if not refused or set(message.artifact) - {"status", "message", "accepted"}:
            violations.append(f"does not refuse: {message.artifact}")
    elif refused:
        violations.append("refuses though nothing it shows needs a higher level")
    assert violations == [], content


def test_the_matrix_itself_orders_the_kinds_as_documented() -> None:
    assert {kind: level.value for kind, level in REQUIRED_LEVEL.items()} == {
        Disclosure.KNOWLEDGE: "anonymous",
        Disclosure.PRIOR_TOPICS: "claimed",
        Disclosure.OWN_ORDER_STATUS: "verified",
        Disclosure.PRIOR_CONVERSATIONS: "verified",
        Disclosure.ADDRESS: "strong",
        Disclosure.PAYMENT_DETAILS: "strong",
    }
    assert [may_see(level, Disclosure.ADDRESS) for level in LEVELS] == [False, False, False, True]
    assert [may_see(level, Disclosure.KNOWLEDGE) for level in LEVELS] == [True, True, True, True]


# -- tool by tool -----------------------------------------------------------------------------------------------


def test_search_knowledge_answers_at_every_level_with_the_same_passages(world: World) -> None:
    payloads = [
        world.run(search_knowledge, level, {"query": "what is the return policy"})[0].artifact for level in LEVELS
    ]
    assert payloads[0]["status"] == "ok"
    assert payloads[0]["passages"]
    assert all(p == payloads[0] for p in payloads)
    assert all(
        set(passage) == {"article_id", "title", "version", "kind", "text", "score"}
        for passage in payloads[0]["passages"]
    )
    james = [
        fragment(JAMES["email"]),
        f"{JAMES['name']['first_name']} {JAMES['name']['last_name']}",
        *(m for ms in markers(world.episode).values() for m in ms),
    ]
    assert [m for m in james if m in json.dumps(payloads[0], ensure_ascii=False)] == []


def test_recall_shows_topics_only_to_claimed_and_whole_episodes_from_verified(world: World) -> None:
    claimed, _ = world.run(recall_context, VerificationLevel.CLAIMED, {"query": "my order"})
    verified, _ = world.run(recall_context, VerificationLevel.VERIFIED, {"query": "my order"})
    assert claimed.artifact["disclosure"] == "topics_only"
    [topics_only] = claimed.artifact["episodes"]
    assert set(topics_only) == {"citation", "last_active", "channels", "topics", "products", "open_items"}
    assert "profile" not in claimed.artifact
    assert "preferences" not in claimed.artifact
    assert verified.artifact["disclosure"] == "full"
    [full] = verified.artifact["episodes"]
    assert full["orders"] == [ORDER["order_id"]]
    assert full["citation"] == topics_only["citation"] == f"episode:{world.episode['episode_id']}"
    assert "text" not in full  # the embedded text is for ranking only
    assert verified.artifact["profile"]["citation"] == f"customer:{JAMES_ID}"


WRONG_FACTS = {
    "wrong email": {"email": "james.li@example.invalid"},
    "wrong first name": {"first_name": "Jim", "last_name": JAMES["name"]["last_name"], "zip": JAMES["address"]["zip"]},
    "wrong last name": {"first_name": JAMES["name"]["first_name"], "last_name": "Lee", "zip": JAMES["address"]["zip"]},
    "wrong zip": {"first_name": JAMES["name"]["first_name"], "last_name": JAMES["name"]["last_name"], "zip": "10084"},
    "right order, wrong email": {"order_id": ORDER["order_id"], "email": "james.li@example.invalid"},
    "another's order, his email": {"order_id": NOAHS_ORDER["order_id"], "email": JAMES["email"]},
}


def test_verify_customer_fails_the_same_way_whichever_fact_is_wrong(world: World) -> None:
    for level in (VerificationLevel.ANONYMOUS, VerificationLevel.CLAIMED):
        results = {
            why: world.run(verify_customer, level, facts, state={"verification_failures": 1})
            for why, facts in WRONG_FACTS.items()
        }
        for why, (message, update) in results.items():
            assert message.artifact == {"status": "failed", "message": FAILED_MESSAGE, "attempts": 2}, (level, why)
            assert update == {"verification_failures": 2}, (level, why)  # no identity change
        assert len({str(message.content) for message, _ in results.values()}) == 1
    for level in (VerificationLevel.VERIFIED, VerificationLevel.STRONG):
        for why, facts in WRONG_FACTS.items():
            message, update = world.run(verify_customer, level, facts)
            assert message.artifact == {"status": "ok", "already_verified": True}, (level, why)
            assert update == {}, (level, why)


def test_escalate_to_human_returns_no_customer_data_at_any_level(world: World) -> None:
    request = {"reason": "the customer asked for a person", "urgency": "high", "source": "model"}
    for level in LEVELS:
        message, update = world.run(
            escalate_to_human, level, {"reason": "the customer asked for a person", "urgency": "high"}
        )
        assert message.artifact == {"status": "queued", **request}, level
        assert update == {"escalation": request}, level


def test_another_customers_order_reads_exactly_as_not_found(world: World) -> None:
    noahs = [fragment(NOAHS_ORDER["address"]["address1"]), *NOAHS_ORDER["fulfillments"][0]["tracking_id"]]
    noahs += [fragment(item["name"]) for item in NOAHS_ORDER["items"]]
    for level in LEVELS:
        theirs, theirs_update = world.run(lookup_order, level, {"order_id": NOAHS_ORDER["order_id"]})
        missing, missing_update = world.run(lookup_order, level, {"order_id": "#W0000000"})
        for written in ("w7678072", "7678072", "#W 7678072"):
            variant, _ = world.run(lookup_order, level, {"order_id": written})
            assert variant.artifact == theirs.artifact, (level, written)
        assert not [m for m in noahs if m in str(theirs.content)], level
        if may_see(level, Disclosure.OWN_ORDER_STATUS):
            assert theirs.artifact == {
                "status": "not_found",
                "order_id": NOAHS_ORDER["order_id"],
                "message": NOT_FOUND_MESSAGE,
            }
            assert missing.artifact == {**theirs.artifact, "order_id": "#W0000000"}
            assert str(missing.content) == str(theirs.content).replace(NOAHS_ORDER["order_id"], "#W0000000")
            assert theirs_update == missing_update == {}
        else:
            assert theirs.artifact["status"] == "verification_required"
            assert missing.artifact == theirs.artifact
            assert set(theirs_update) == set(missing_update) == {"focus_order_id"}
        assert theirs.status == missing.status == "success"


def test_an_address_typed_into_an_earlier_question_is_not_recalled_below_strong(world: World) -> None:
    noah = USERS["noah_brown_6181"]
    address = noah["address"]
    for text in (
        f"do you deliver to {address['address1']} on weekends?",
        f"how long does shipping to zip {address['zip']} take?",
        f"I would prefer deliveries to {address['address1']}",
    ):
        # Answered with search_knowledge, so the question becomes a public topic, scrubbed of the address.
        world.services.turns.handle(InboundMessage(channel=Channel.WEB, sender=noah["email"], text=text, vouched=True))
    leaks = []
    for level in (VerificationLevel.CLAIMED, VerificationLevel.VERIFIED):
        message, _ = world.run(recall_context, level, {"query": "deliveries"}, user="noah_brown_6181")
        leaks += [(level, fact) for fact in (address["address1"], address["zip"]) if fact in str(message.content)]
    assert leaks == []
