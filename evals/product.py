"""The product behind the suite runner: `ServicesDriver` runs a scenario's turns on one open product, and
`DemoProducts` opens a fresh demo product per scenario run (a copy of one demo database built on first use)."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from sqlalchemy import update

from threadline.core.errors import ThreadlineError
from threadline.core.settings import Settings
from threadline.core.threads import handle_thread
from threadline.core.types import ArticleDraft, Channel, HandoffId, InboundMessage, OrderId
from threadline.demo.loader import read_json
from threadline.evals.driver import CustomerFacts, ToolResult, TurnRecord
from threadline.memory.identity import classify_handle
from threadline.memory.schema import OrderRow
from threadline.product.services import Services, open_services


class ServicesDriver:
    """One open product (`product.services.Services`) as the runner's `Driver`."""

    def __init__(self, services: Services, customers: dict[str, CustomerFacts], workdir: Path | None = None) -> None:
        self._services, self._customers, self._workdir = services, customers, workdir
        self._seen_tools: set[str] = set()
        self._seen_handoffs: set[str] = set()

    def turn(self, channel: str, sender: str, text: str, *, vouched: bool, at: datetime) -> TurnRecord:
        record = TurnRecord(channel=channel, sender=sender, text=text, at=at)
        try:
            message = InboundMessage(
                channel=Channel(channel), sender=sender, text=text, vouched=vouched, received_at=at
            )
            outcome = self._services.turns.handle(message)
        except ThreadlineError as error:
            record.error = error.code
            return record
        record.reply, record.tools, record.owner = outcome.reply, list(outcome.tools), outcome.owner
        record.customer_id, record.handoff_id = outcome.customer_id, outcome.handoff_id
        record.results = self._tool_results(Channel(channel), sender, outcome.customer_id)
        if outcome.handoff_id and outcome.handoff_id not in self._seen_handoffs:
            self._seen_handoffs.add(outcome.handoff_id)
            handoff = self._services.stores.handoffs.get(HandoffId(outcome.handoff_id))
            record.packet = handoff.packet if handoff is not None else None
        return record

    def _tool_results(self, channel: Any, sender: str, customer_id: str) -> list[ToolResult]:
        """The tool messages this turn added, from every thread the turn may have written to, and the
        knowledge-base notice the turn mentioned."""
        handle_type, handle = classify_handle(channel, sender)
        identity = self._services.stores.customers.find_by_handle(handle_type, handle)
        threads = [customer_id]
        if identity is not None:
            threads += [identity.customer_id, handle_thread(identity.customer_id, handle_type, handle)]
        results: list[ToolResult] = []
        for thread in dict.fromkeys(threads):
            values = self._services.threads.values(thread)
            messages = values.get("messages", [])
            notice = values.get("notice") if thread == customer_id else None
            if notice:  # a proactive notice comes from the knowledge base, not from a tool: still evidence
                results.append(ToolResult("notice", {"citation": notice.get("citation")}, str(notice.get("text"))))
            calls: dict[str | None, Any] = {
                c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls
            }
            for message in messages:
                if isinstance(message, ToolMessage) and message.id not in self._seen_tools:
                    self._seen_tools.add(str(message.id))
                    call: dict[str, Any] = calls.get(message.tool_call_id) or {}
                    name = str(call.get("name") or message.name or "")
                    results.append(ToolResult(name, dict(call.get("args") or {}), str(message.content)))
        return results

    def publish(self, article: dict[str, Any]) -> None:
        stores = self._services.stores
        stores.knowledge.upsert(ArticleDraft.model_validate(article), author="eval-suite")
        self._services.index.sync(stores.knowledge)

    def annotate_order(self, order_id: str, note: str) -> None:
        with self._services.stores.db.session() as session:
            session.execute(update(OrderRow).where(OrderRow.id == order_id).values(notes=note))

    def order_status(self, order_id: str) -> tuple[str, int] | None:
        order = self._services.stores.orders.get_order(OrderId(order_id))
        return None if order is None else (order.status.value, len(order.items))

    def customers(self) -> dict[str, CustomerFacts]:
        return self._customers

    def close(self) -> None:
        self._services.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def demo_customers() -> dict[str, CustomerFacts]:
    """Every demo customer's identifying facts, from the demo store's source data."""

    users, orders = read_json("tau_retail", "users.json"), read_json("tau_retail", "orders.json")
    tracking: dict[str, set[str]] = {}
    addresses: dict[str, set[str]] = {}
    for order in orders.values():
        tracking.setdefault(order["user_id"], set()).update(t for f in order["fulfillments"] for t in f["tracking_id"])
        addresses.setdefault(order["user_id"], set()).add(order["address"]["address1"])
    return {
        user_id: CustomerFacts(
            user_id=user_id,
            email=user["email"],
            name=f"{user['name']['first_name']} {user['name']['last_name']}",
            zip=user["address"]["zip"],
            order_ids=frozenset(user["orders"]),
            tracking_ids=frozenset(tracking.get(user_id, set())),
            addresses=frozenset({user["address"]["address1"], *addresses.get(user_id, set())}),
        )
        for user_id, user in users.items()
    }


class DemoProducts:
    """A `DriverFactory`: each call opens the product over a fresh copy of one demo database built on first use
    (SQLite in a temp dir). With a database URL every call opens that database instead (demo loaded if empty):
    scenarios then share it, so give a throwaway one."""

    def __init__(self, base: Settings, database_url: str | None = None) -> None:
        self._base, self._database_url = base, database_url
        self._root = Path(tempfile.mkdtemp(prefix="threadline-eval-"))
        self._template: Path | None = None
        self._customers = demo_customers()

    def _build_template(self) -> Path:
        template = self._root / "template"
        services = open_services(self._settings(template, None, load_demo=True))
        services.close()
        return template

    def _settings(self, data_dir: Path, database_url: str | None, *, load_demo: bool) -> Settings:
        return self._base.model_copy(
            update={
                "data_dir": data_dir,
                "database_url": database_url,
                "load_demo": load_demo,
                "cache_dir": self._base.cache_path,
                "kb_refresh_s": 60.0,  # the driver indexes the articles a scenario publishes at once: no polling
            }
        )

    def __call__(self) -> ServicesDriver:
        if self._database_url is not None:
            settings = self._settings(self._root / "shared", self._database_url, load_demo=True)
            return ServicesDriver(open_services(settings), self._customers)
        if self._template is None:
            self._template = self._build_template()
        workdir = Path(tempfile.mkdtemp(dir=self._root))
        shutil.copytree(self._template, workdir, dirs_exist_ok=True)
        services = open_services(self._settings(workdir, None, load_demo=False))
        return ServicesDriver(services, self._customers, workdir)

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)
