"""Identity resolution: a channel handle maps to one customer; unknown handles get a provisional customer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from threadline.core.errors import InvalidInputError
from threadline.core.ports import CustomerRepository, OrderSystem
from threadline.core.types import (
    BSUID_PATTERN,
    Channel,
    ChannelIdentity,
    Customer,
    CustomerId,
    HandleType,
    OrderId,
    VerificationLevel,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HANDLE_FOR_CHANNEL = {
    Channel.SMS: HandleType.PHONE,
    Channel.VOICE: HandleType.PHONE,
    Channel.EMAIL: HandleType.EMAIL,
    Channel.SOCIAL: HandleType.SOCIAL,
    Channel.WHATSAPP: HandleType.PHONE,  # a business-scoped user id instead when the phone is withheld
}
# Handles anyone can forge (a caller id, an SMS sender, an email From): verification earned on one lasts for the
# conversation only.
SPOOFABLE = frozenset({HandleType.PHONE, HandleType.EMAIL})
# What a handle proves by itself: a phone number or an email sender can be spoofed, so neither verifies.
_CAP = {
    HandleType.PHONE: VerificationLevel.CLAIMED,
    HandleType.EMAIL: VerificationLevel.CLAIMED,
    HandleType.VISITOR: VerificationLevel.ANONYMOUS,
    HandleType.SOCIAL: VerificationLevel.CLAIMED,
    HandleType.WHATSAPP: VerificationLevel.CLAIMED,
    HandleType.LOYALTY: VerificationLevel.CLAIMED,
    HandleType.EXTERNAL: VerificationLevel.CLAIMED,
}


@dataclass(frozen=True)
class Resolution:
    """Who sent a message and how sure we are."""

    customer: Customer
    handle_type: HandleType
    handle: str
    level: VerificationLevel
    created: bool


def normalize_phone(raw: str) -> str:
    """E.164 form of a phone number (10 digits are taken as US)."""
    digits = re.sub(r"\D", "", raw)
    if raw.strip().startswith("+") and 8 <= len(digits) <= 15:
        return f"+{digits}"
    if len(digits) == 10:
        return f"+1{digits}"
    if len(digits) == 11 and digits.startswith("1"):
        return f"+{digits}"
    raise InvalidInputError(f"not a phone number: {raw!r}")


def classify_handle(channel: Channel, raw: str) -> tuple[HandleType, str]:
    """The handle type and normalized value of a sender on `channel`."""
    value = raw.strip()
    if not value:
        raise InvalidInputError("the sender handle is empty")
    handle_type = _HANDLE_FOR_CHANNEL.get(channel)
    if handle_type is None:  # web and store: an email when it looks like one, else a visitor id
        handle_type = HandleType.EMAIL if _EMAIL.match(value) else HandleType.VISITOR
    if channel is Channel.WHATSAPP and BSUID_PATTERN.match(value):  # the user hides their number: their BSUID instead
        return HandleType.WHATSAPP, value
    if handle_type is HandleType.PHONE:
        return handle_type, normalize_phone(value)
    if handle_type is HandleType.EMAIL:
        if not _EMAIL.match(value):
            raise InvalidInputError(f"not an email address: {raw!r}")
        return handle_type, value.lower()
    return handle_type, value[:320]


class IdentityResolver:
    """Maps handles to customers and verifies customers from what they tell us."""

    def __init__(
        self,
        customers: CustomerRepository,
        orders: OrderSystem,
        verification_ttl: timedelta = timedelta(hours=24),
        *,
        conversation_idle: timedelta = timedelta(minutes=30),
    ) -> None:
        self._customers = customers
        self._orders = orders
        self._ttl = verification_ttl
        self._idle = conversation_idle

    def resolve(self, channel: Channel, raw_handle: str, *, vouched: bool = False) -> Resolution:
        """The customer behind a handle; `vouched` means the channel itself proved the identity."""
        handle_type, handle = classify_handle(channel, raw_handle)
        identity = self._customers.find_by_handle(handle_type, handle)
        created = False
        if identity is None:
            level = VerificationLevel.STRONG if vouched else VerificationLevel.ANONYMOUS
            _customer, identity, created = self._customers.create_for_handle(
                handle_type, handle, level, actor=f"channel:{channel.value}"
            )
        customer = self._customers.get(identity.customer_id)
        assert customer is not None
        if not vouched and self._someone_else_speaks(identity):
            return self._other_person(identity, handle, customer, created)
        level = self._level(identity, handle_type, vouched)
        if level is VerificationLevel.VERIFIED and handle_type in SPOOFABLE:
            self._customers.seen(identity.id, datetime.now(UTC))  # the conversation goes on
        return Resolution(customer, handle_type, handle, level, created)

    def link_alias(self, who: Resolution, channel: Channel, alias: str) -> None:
        """Link `alias` (another handle of the sender on `channel`) to the sender's customer when no one owns it yet;
        it proves no more than the handle it came with. An alias already linked, to anyone, is left as it is."""
        alias_type, value = classify_handle(channel, alias)
        if alias_type == who.handle_type or self._customers.find_by_handle(alias_type, value) is not None:
            return
        level = min(who.level, _CAP[alias_type], key=lambda lvl: lvl.rank)
        if level is VerificationLevel.STRONG:
            level = VerificationLevel.CLAIMED
        self._customers.link_identity(who.customer.id, alias_type, value, level, actor=f"channel:{channel.value}")

    def _level(self, identity: ChannelIdentity, handle_type: HandleType, vouched: bool) -> VerificationLevel:
        """Strong only while the channel proves it now. Verification earned in conversation holds on the handle
        for the verification window, and on a handle anyone can forge (caller id, SMS sender, email From) only
        while its conversation goes on: after `conversation_idle` without a message it is a claim again, so a
        spoofed number, or the next person on a shared phone, hears nothing of the customer's. Otherwise a handle
        proves no more than its kind can."""
        if vouched:
            return VerificationLevel.STRONG
        stored, since, now = identity.verification_level, identity.verified_at, datetime.now(UTC)
        if stored.at_least(VerificationLevel.VERIFIED) and since and now - since <= self._ttl:
            last = identity.last_seen_at or since
            if handle_type not in SPOOFABLE or now - last <= self._idle:
                return VerificationLevel.VERIFIED
        return min(stored, _CAP[handle_type], key=lambda lvl: lvl.rank)

    def _someone_else_speaks(self, identity: ChannelIdentity) -> bool:
        """Whether the person in the handle's current conversation said they are not its customer (a shared
        phone or inbox), and that conversation still goes on."""
        changed = identity.speaker_changed_at
        if changed is None:
            return False
        last = identity.last_seen_at or changed  # set with the change, moved on by every message since
        return datetime.now(UTC) - last <= self._idle

    def _other_person(self, identity: ChannelIdentity, handle: str, holder: Customer, created: bool) -> Resolution:
        """The other person on a shared handle: the customer they verified as (for this conversation), or an
        anonymous sender who sees nothing of the handle's customer."""
        now = datetime.now(UTC)
        self._customers.seen(identity.id, now)  # the other person's conversation goes on
        speaker = self._customers.get(identity.speaker_customer_id) if identity.speaker_customer_id else None
        changed = identity.speaker_changed_at
        if speaker is not None and not speaker.provisional and changed is not None and now - changed <= self._ttl:
            return Resolution(speaker, identity.handle_type, handle, VerificationLevel.VERIFIED, created)
        return Resolution(holder, identity.handle_type, handle, VerificationLevel.ANONYMOUS, created)

    def another_person(self, handle_type: HandleType, handle: str, actor: str) -> None:
        """The person writing says they are not the customer the handle's conversation was verified as ("it's not
        me, it's my husband"): for the rest of this conversation the handle proves nobody, until they verify as
        themselves."""
        identity = self._customers.find_by_handle(handle_type, handle)
        if identity is not None:
            self._customers.set_speaker(identity.id, None, datetime.now(UTC), actor=actor)

    def verify(
        self,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        zip: str | None = None,
        order_id: str | None = None,
    ) -> Customer | None:
        """The one customer these facts identify (email on file, name + zip, or order + its email), else None."""
        matches: list[Customer] = []
        if email and order_id:
            order = self._orders.get_order(OrderId(order_id))
            owner = self._customers.get(CustomerId(order.customer_id)) if order else None
            matches = [owner] if owner and owner.email == email.strip().lower() else []
        elif email:
            matches = [c for c in self._customers.find_by_email(email) if not c.provisional]
        elif first_name and last_name and zip:
            matches = [c for c in self._customers.find_by_name_zip(first_name, last_name, zip) if not c.provisional]
        return matches[0] if len(matches) == 1 else None

    def link_verified(
        self, customer_id: CustomerId, handle_type: HandleType, handle: str, level: VerificationLevel, actor: str
    ) -> None:
        """Point the handle at the verified customer, so the next message on it needs no re-verification.
        A handle held by another customer is never moved here: one held by a known customer stays theirs (the
        verified person speaks on it as themselves for the rest of the conversation: a shared family phone), and
        a provisional customer's handle moves with the whole provisional customer, when the turn service
        merges it (audited, undoable) once the turn is over."""
        current = self._customers.find_by_handle(handle_type, handle)
        if current is not None and current.customer_id != customer_id:
            holder = self._customers.get(current.customer_id)
            if holder is not None and not holder.provisional:  # a shared phone: they speak as themselves on it
                self._customers.set_speaker(current.id, customer_id, datetime.now(UTC), actor=actor)
            return
        self._customers.link_identity(customer_id, handle_type, handle, level, actor=actor)
