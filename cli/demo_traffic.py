"""`threadline demo traffic`: simulated shoppers driving the real API over a simulated clock, so the dashboard shows
figures computed from real turns.

Each shopper is a demo-store customer (an email on file) to whom the driver gives a phone number, a web visitor id and
a social id (`POST /v1/customers/{id}/identities`, as a CRM sync would), so their conversations on any channel are
one customer's. Day by day (seeded, deterministic), a shopper may browse (`page_view` with a UTM source), chat with
the AI on a channel (`POST /v1/messages` with `received_at`, an admin key's privilege), come back on another channel,
be handed off — a scripted agent then claims, replies, resolves or releases, and rates the packet through
`/v1/handoffs…`, or never picks the case up — and buy online or in a store (`POST /v1/events`).
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from threadline.core.settings import Settings

CHANNELS = ("web", "sms", "email", "social", "voice")
CHANNEL_WEIGHTS = (5, 3, 2, 1, 1)
SOURCES = ("google", "newsletter", "instagram", "direct", "tiktok")
QUESTIONS = (
    "what is your return policy?",
    "how long does shipping take?",
    "can I exchange an item for a different size?",
    "how do I return an item?",
)
GAP_QUESTION = "do you offer engraving on the watches?"
UPSET = ("this is terrible, I am furious with your awful service", "this is ridiculous and awful, I hate this")
FOLLOW_UPS = ("thanks, and can I return it in a store?", "what about exchanges, how do they work?")
THANKS = ("thanks, that helped!", "perfect, thank you", "ok great thx")
PACKET_FIELDS = ("goal", "facts", "open_questions", "next_steps", "intent", "tools_called")
AGENT_LINES = ("Hi, this is Sam from the support team - I'm looking into it now.", "Thanks for waiting, I can help.")
TIMEOUT_S = 120.0
RETRIES = 5
Progress = Callable[[int, int], None]


@dataclass
class Shopper:
    """One simulated customer and their handles."""

    index: int
    email: str
    phone: str
    visitor: str
    social: str
    customer_id: str = ""

    def sender(self, channel: str) -> str:
        return {"web": self.visitor, "sms": self.phone, "voice": self.phone, "email": self.email}.get(
            channel, self.social
        )


@dataclass
class TrafficReport:
    """What the driver did (the dashboard computes its figures from the log, not from this)."""

    customers: int = 0
    days: int = 0
    start: str = ""
    end: str = ""
    turns: int = 0
    escalations: int = 0
    claimed: int = 0
    resolved: int = 0
    released: int = 0
    unclaimed: int = 0
    ratings: int = 0
    commerce_events: int = 0
    purchases: int = 0
    channels: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Driver:
    """The scripted shoppers and agents, over HTTP."""

    def __init__(self, client: httpx.Client, rng: random.Random, zone: ZoneInfo, report: TrafficReport) -> None:
        self._http, self._rng, self._zone, self.report = client, rng, zone, report
        self._seen: set[str] = set()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        for _ in range(RETRIES):
            response = self._http.request(method, path, json=body)
            if response.status_code == 429:  # rate limited: wait as told, then retry
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status_code >= 400:
                raise RuntimeError(f"{method} {path} failed ({response.status_code}): {response.text[:300]}")
            answer: dict[str, Any] = response.json()
            return answer
        raise RuntimeError(f"{method} {path} stayed rate limited")

    def enrol(self, shopper: Shopper, at: datetime) -> None:
        """Find the shopper's customer by email (a first site visit) and put their other handles on file."""
        visit = self._event("page_view", "email", shopper.email, at, utm_source="direct", url="/")
        shopper.customer_id = visit["customer_id"]
        for kind, value in (("phone", shopper.phone), ("visitor", shopper.visitor), ("social", shopper.social)):
            response = self._http.post(
                f"/v1/customers/{shopper.customer_id}/identities",
                json={"handle_type": kind, "handle": value, "level": "claimed"},
            )
            if response.status_code not in (200, 201, 409):
                raise RuntimeError(f"linking a {kind} failed ({response.status_code}): {response.text[:300]}")

    def _event(self, kind: str, handle_type: str, value: str, at: datetime, **properties: Any) -> dict[str, Any]:
        body = {"type": kind, "handle": {"type": handle_type, "value": value}, "occurred_at": at.isoformat()}
        logged = self._call("POST", "/v1/events", {"events": [body | {"properties": properties}]})
        self.report.commerce_events += 1
        self.report.purchases += kind.startswith("purchase")
        event: dict[str, Any] = logged["events"][0]
        return event

    def say(self, shopper: Shopper, channel: str, text: str, at: datetime) -> dict[str, Any]:
        body = {"channel": channel, "from": shopper.sender(channel), "text": text, "received_at": at.isoformat()}
        outcome = self._call("POST", "/v1/messages", body)
        self.report.turns += 1
        self.report.channels[channel] = self.report.channels.get(channel, 0) + 1
        return outcome

    def local(self, day: date, hour: int, minute: int) -> datetime:
        return datetime.combine(day, clock(hour, minute), tzinfo=self._zone).astimezone(UTC)

    def session_start(self, day: date) -> datetime:
        """Mostly within business hours, often in the evening, sometimes early."""
        roll = self._rng.random()
        hour = self._rng.randint(9, 17) if roll < 0.6 else self._rng.randint(18, 22) if roll < 0.9 else 7
        return self.local(day, hour, self._rng.randrange(0, 60, 5))

    def chat(self, shopper: Shopper, channel: str, at: datetime, last: bool) -> datetime:
        """One conversation; returns when it ended."""
        roll = self._rng.random()
        if roll < 0.62:
            outcome = self.say(shopper, channel, self._rng.choice(QUESTIONS), at)
            if self._rng.random() < 0.4:
                at += timedelta(minutes=3)
                outcome = self.say(shopper, channel, self._rng.choice(FOLLOW_UPS), at)
            if outcome.get("owner") != "queue" and self._rng.random() < 0.35:  # some say it helped
                at += timedelta(minutes=1)
                outcome = self.say(shopper, channel, self._rng.choice(THANKS), at)
        elif roll < 0.72:
            outcome = self.say(shopper, channel, GAP_QUESTION, at)
            at += timedelta(minutes=2)
            outcome = self.say(shopper, channel, GAP_QUESTION, at)
        elif roll < 0.86:
            outcome = self.say(shopper, channel, "I want to talk to a person", at)
        else:
            outcome = self.say(shopper, channel, UPSET[0], at)
            at += timedelta(minutes=2)
            outcome = self.say(shopper, channel, UPSET[1], at)
        if outcome.get("owner") == "queue" and outcome.get("handoff_id") not in (None, *self._seen):
            self._seen.add(str(outcome["handoff_id"]))
            at = self.agent_works(shopper, channel, str(outcome["handoff_id"]), at, last)
        return at

    def agent_works(self, shopper: Shopper, channel: str, handoff: str, at: datetime, last: bool) -> datetime:
        """The scripted agent: mostly claim, reply and resolve; sometimes hand back to the AI; on a shopper's last
        conversation, sometimes never pick the case up."""
        self.report.escalations += 1
        roll = self._rng.random()
        if last and roll < 0.25:
            self.report.unclaimed += 1
            return at
        self._call("POST", f"/v1/handoffs/{handoff}/claim")
        self.report.claimed += 1
        self._call("POST", f"/v1/handoffs/{handoff}/reply", {"text": self._rng.choice(AGENT_LINES)})
        at += timedelta(minutes=4)
        self.say(shopper, channel, "ok, thank you", at)  # the AI stays silent: a person owns the case
        if roll < 0.8:
            self._call("POST", f"/v1/handoffs/{handoff}/resolve")
            self.report.resolved += 1
        else:
            self._call("POST", f"/v1/handoffs/{handoff}/release", {"note": "Answered the question; back to the AI."})
            self.report.released += 1
        missing = self._rng.sample(PACKET_FIELDS, self._rng.choice((0, 0, 0, 1, 1, 2)))
        rating = {"usefulness": self._rng.choice((3, 4, 4, 5, 5)), "missing": missing}
        self._call("POST", f"/v1/handoffs/{handoff}/rate", rating)
        self.report.ratings += 1
        return at

    def browse(self, shopper: Shopper, at: datetime) -> None:
        source = self._rng.choice(SOURCES)
        props = {"url": "/products", **({"utm_source": source, "utm_medium": "cpc"} if source != "direct" else {})}
        self._event("page_view", "visitor", shopper.visitor, at, **props)

    def buy(self, shopper: Shopper, at: datetime, order: str) -> None:
        amount = round(self._rng.uniform(20, 240), 2)
        if self._rng.random() < 0.7:
            self._event("add_to_cart", "visitor", shopper.visitor, at, sku=f"sku-{order}", amount=amount)
            self._event("purchase_online", "email", shopper.email, at + timedelta(minutes=6), order_id=order,
                        amount=amount, currency="USD")  # fmt: skip
        else:
            later = at + timedelta(days=1)
            self._event("store_visit", "phone", shopper.phone, later, store_id="store-1")
            self._event("purchase_in_store", "phone", shopper.phone, later + timedelta(minutes=20), order_id=order,
                        store_id="store-1", amount=amount, currency="USD")  # fmt: skip

    def live_one_day(self, shopper: Shopper, day: date, last_day: bool) -> None:
        """What one shopper does on one day (often nothing)."""
        if self._rng.random() > 0.65:
            return
        at = self.session_start(day)
        if self._rng.random() < 0.7:
            self.browse(shopper, at - timedelta(minutes=4))
        chatted = self._rng.random() < 0.8
        channel = self._rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
        if chatted:
            at = self.chat(shopper, channel, at, last_day)
            if self._rng.random() < 0.3:  # back later the same day on another channel
                other = self._rng.choice([c for c in CHANNELS if c != channel])
                at = self.chat(shopper, other, at + timedelta(hours=2), last_day)
        if self._rng.random() < (0.5 if chatted else 0.3):
            self.buy(shopper, at + timedelta(minutes=self._rng.randint(10, 600)), f"demo-{shopper.index}-{day:%m%d}")


def shoppers(count: int, seed: int, emails: list[str]) -> list[Shopper]:
    """`count` shoppers drawn from the demo store's customers (by seed), with fictional phone numbers (area code
    555) and ids."""
    chosen = random.Random(seed).sample(emails, min(count, len(emails)))
    return [
        Shopper(i, email, f"+1555{seed % 100:02d}{i:05d}", f"demo-visitor-{seed}-{i}", f"demo-social-{seed}-{i}")
        for i, email in enumerate(chosen)
    ]


def demo_emails() -> list[str]:
    from threadline.demo.loader import DATA_DIR

    users = json.loads((DATA_DIR / "tau_retail" / "users.json").read_text())
    return sorted(str(u["email"]) for u in users.values())


def drive(
    client: httpx.Client,
    settings: Settings,
    *,
    customers: int,
    days: int,
    seed: int,
    start: date,
    progress: Progress | None = None,
) -> TrafficReport:
    """Run the simulation through `client` (base URL and an admin key set); deterministic for a seed and start."""
    report = TrafficReport(customers=customers, days=days, start=start.isoformat())
    report.end = (start + timedelta(days=days - 1)).isoformat()
    zone = ZoneInfo(settings.business_timezone)
    people = shoppers(customers, seed, demo_emails())
    for done, shopper in enumerate(people, start=1):
        driver = Driver(client, random.Random(f"{seed}:{shopper.index}"), zone, report)
        driver.enrol(shopper, driver.local(start, 8, 0))
        for offset in range(days):
            driver.live_one_day(shopper, start + timedelta(days=offset), offset == days - 1)
        if progress:
            progress(done, len(people))
    return report


@contextmanager
def served(settings: Settings) -> Iterator[tuple[str, str]]:
    """The app on a free loopback port from a background thread, with a one-off admin key revoked at the end."""
    from threadline.api.app import create_app
    from threadline.api.local_server import serve_in_thread
    from threadline.core.auth import Role
    from threadline.memory.stores import Stores
    from threadline.product.database import open_database

    db = open_database(settings)
    stores = Stores.over(db)
    key = "demo-" + secrets.token_urlsafe(24)
    record = stores.api_keys.ensure(Role.ADMIN, key, name="demo traffic agent", created_by="threadline demo traffic")
    try:
        with serve_in_thread(create_app(settings), "demo-traffic-server", timeout_s=300) as base:
            yield base, key
    finally:
        stores.api_keys.revoke(record.id)
        db.dispose()


def run_traffic(
    settings: Settings,
    *,
    customers: int,
    days: int,
    seed: int,
    start: date | None = None,
    url: str | None = None,
    key: str | None = None,
    progress: Progress | None = None,
) -> TrafficReport:
    """Drive the API at `url` with the admin `key`, or an in-process server over `settings`' database. The
    simulated days end yesterday (business time zone) unless `start` is given."""
    first = start or datetime.now(ZoneInfo(settings.business_timezone)).date() - timedelta(days=days)
    options: dict[str, Any] = {"customers": customers, "days": days, "seed": seed, "start": first, "progress": progress}
    if url is not None:
        if not key:
            raise ValueError("an admin API key is required with --url")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT_S) as client:
            return drive(client, settings, **options)
    with (
        served(settings) as (base, admin),
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=TIMEOUT_S) as client,
    ):
        return drive(client, settings, **options)
