"""Customers and channel identities; every link and verification writes an audit row, nothing is deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from threadline.core.types import (
    ChannelIdentity,
    Customer,
    CustomerId,
    HandleType,
    IdentityEvent,
    IdentityEventKind,
    VerificationLevel,
)
from threadline.memory.db import Database
from threadline.memory.ids import new_id
from threadline.memory.schema import ChannelIdentityRow, CustomerRow, IdentityEventRow, table, utcnow

_CUSTOMERS, _IDENTITIES = table(CustomerRow), table(ChannelIdentityRow)
_CUSTOMER = select(_CUSTOMERS).where(_CUSTOMERS.c.id == bindparam("id"))
_ACTIVE_HANDLE = select(_IDENTITIES).where(
    _IDENTITIES.c.handle_type == bindparam("handle_type"),
    _IDENTITIES.c.handle_value == bindparam("value"),
    _IDENTITIES.c.active.is_(True),
)


class SqlCustomerRepository:
    """`CustomerRepository` over the domain store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, customer_id: CustomerId) -> Customer | None:
        row = self._db.first(_CUSTOMER, {"id": customer_id})
        return Customer.model_validate(row) if row else None

    def get_by_external_id(self, external_id: str) -> Customer | None:
        with self._db.session() as s:
            row = s.scalar(select(CustomerRow).where(CustomerRow.external_id == external_id))
            return Customer.model_validate(row) if row else None

    def create(
        self,
        *,
        provisional: bool,
        external_id: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
        zip: str | None = None,
        address: dict[str, Any] | None = None,
        customer_id: CustomerId | None = None,
    ) -> Customer:
        row = CustomerRow(
            id=customer_id or new_id("cus"),
            external_id=external_id,
            first_name=first_name,
            last_name=last_name,
            email=email.lower() if email else None,
            zip=zip,
            address=address,
            provisional=provisional,
            created_at=utcnow(),
        )
        with self._db.session() as s:
            s.add(row)
            s.flush()
            return Customer.model_validate(row)

    def create_for_handle(
        self, handle_type: HandleType, value: str, level: VerificationLevel, *, actor: str
    ) -> tuple[Customer, ChannelIdentity, bool]:
        """A provisional customer owning a new handle, in one transaction; if the handle was claimed
        meanwhile, the existing owner instead (created = False). A handle is never taken from its owner."""
        now = utcnow()
        try:
            with self._db.session() as s:
                row = CustomerRow(id=new_id("cus"), provisional=True, created_at=now)
                s.add(row)
                s.flush()
                identity = ChannelIdentityRow(
                    customer_id=row.id,
                    handle_type=handle_type.value,
                    handle_value=value,
                    verification_level=level.value,
                    verified_at=now if level.at_least(VerificationLevel.VERIFIED) else None,
                    active=True,
                    created_at=now,
                )
                s.add(identity)
                s.flush()
                detail: dict[str, Any] = {"handle_type": handle_type.value, "level": level.value, "previous": {}}
                s.add(
                    IdentityEventRow(
                        kind=IdentityEventKind.LINK.value,
                        customer_id=row.id,
                        identity_id=identity.id,
                        detail=detail,
                        actor=actor,
                        created_at=now,
                    )
                )
                return Customer.model_validate(row), ChannelIdentity.model_validate(identity), True
        except IntegrityError:
            existing = self.find_by_handle(handle_type, value)
            if existing is None:
                raise
            owner = self.get(existing.customer_id)
            assert owner is not None
            return owner, existing, False

    def find_by_handle(self, handle_type: HandleType, value: str) -> ChannelIdentity | None:
        row = self._db.first(_ACTIVE_HANDLE, {"handle_type": handle_type.value, "value": value})
        return ChannelIdentity.model_validate(row) if row else None

    def link_identity(
        self,
        customer_id: CustomerId,
        handle_type: HandleType,
        value: str,
        level: VerificationLevel,
        *,
        actor: str,
    ) -> ChannelIdentity:
        """Point the handle at `customer_id` with `level`, recording the previous owner in the audit row."""
        with self._db.session() as s:
            row = s.scalar(
                select(ChannelIdentityRow)
                .where(ChannelIdentityRow.handle_type == handle_type.value)
                .where(ChannelIdentityRow.handle_value == value)
                .with_for_update()
            )
            previous: dict[str, Any] = {}
            if row is None:
                row = ChannelIdentityRow(
                    customer_id=customer_id,
                    handle_type=handle_type.value,
                    handle_value=value,
                    verification_level=level.value,
                    verified_at=utcnow() if level.at_least(VerificationLevel.VERIFIED) else None,
                    last_seen_at=utcnow() if level.at_least(VerificationLevel.VERIFIED) else None,
                    active=True,
                    created_at=utcnow(),
                )
                s.add(row)
            else:
                previous = {
                    "customer_id": row.customer_id,
                    "verification_level": row.verification_level,
                    "active": row.active,
                }
                row.customer_id, row.verification_level, row.active = customer_id, level.value, True
                row.verified_at = utcnow() if level.at_least(VerificationLevel.VERIFIED) else None
                row.last_seen_at = row.verified_at
                row.speaker_customer_id = row.speaker_changed_at = None  # the handle's own customer speaks again
            s.flush()
            kind = IdentityEventKind.VERIFY if previous.get("customer_id") == customer_id else IdentityEventKind.LINK
            s.add(
                IdentityEventRow(
                    kind=kind.value,
                    customer_id=customer_id,
                    identity_id=row.id,
                    other_customer_id=previous.get("customer_id") if kind is IdentityEventKind.LINK else None,
                    detail={"handle_type": handle_type.value, "level": level.value, "previous": previous},
                    actor=actor,
                    created_at=utcnow(),
                )
            )
            return ChannelIdentity.model_validate(row)

    def seen(self, identity_id: int, at: datetime) -> None:
        """A message came from this verified handle at `at` (its conversation goes on)."""
        with self._db.transaction() as conn:
            conn.execute(update(_IDENTITIES).where(_IDENTITIES.c.id == identity_id).values(last_seen_at=at))

    def set_speaker(self, identity_id: int, speaker: CustomerId | None, at: datetime, *, actor: str) -> None:
        """Someone other than the handle's customer writes on it: `speaker` once they verified as themselves."""
        with self._db.session() as s:
            row = s.get(ChannelIdentityRow, identity_id, with_for_update=True)
            if row is None:
                return
            row.speaker_customer_id, row.speaker_changed_at, row.last_seen_at = speaker, at, at
            s.add(
                IdentityEventRow(
                    kind=IdentityEventKind.SPEAKER.value,
                    customer_id=row.customer_id,
                    identity_id=row.id,
                    other_customer_id=speaker,
                    detail={"handle_type": row.handle_type, "verified": speaker is not None},
                    actor=actor,
                    created_at=at,
                )
            )

    def identities(self, customer_id: CustomerId) -> list[ChannelIdentity]:
        with self._db.session() as s:
            rows = s.scalars(
                select(ChannelIdentityRow)
                .where(ChannelIdentityRow.customer_id == customer_id, ChannelIdentityRow.active.is_(True))
                .order_by(ChannelIdentityRow.id)
            )
            return [ChannelIdentity.model_validate(r) for r in rows]

    def identity_events(self, customer_id: CustomerId) -> list[IdentityEvent]:
        with self._db.session() as s:
            rows = s.scalars(
                select(IdentityEventRow)
                .where(
                    (IdentityEventRow.customer_id == customer_id) | (IdentityEventRow.other_customer_id == customer_id)
                )
                .order_by(IdentityEventRow.id)
            )
            return [IdentityEvent.model_validate(r) for r in rows]

    def find_by_email(self, email: str) -> list[Customer]:
        with self._db.session() as s:
            rows = s.scalars(select(CustomerRow).where(CustomerRow.email == email.strip().lower()))
            return [Customer.model_validate(r) for r in rows]

    def find_by_name_zip(self, first_name: str, last_name: str, zip: str) -> list[Customer]:
        with self._db.session() as s:
            rows = s.scalars(
                select(CustomerRow).where(
                    func.lower(CustomerRow.first_name) == first_name.strip().lower(),
                    func.lower(CustomerRow.last_name) == last_name.strip().lower(),
                    CustomerRow.zip == zip.strip(),
                )
            )
            return [Customer.model_validate(r) for r in rows]

    def count(self) -> int:
        with self._db.session() as s:
            return int(s.scalar(select(func.count()).select_from(CustomerRow)) or 0)
