"""Identifier generation: random for new records, name-based (stable) for imported ones."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("5d0c5f2e-7c39-4b8e-9a55-0f3e2b7d1c11")


def new_id(prefix: str) -> str:
    """A fresh random id such as `cus_1f3a…`."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def stable_id(prefix: str, natural_key: str) -> str:
    """The same id for the same natural key on every run and every machine (imports stay idempotent)."""
    return f"{prefix}_{uuid.uuid5(_NAMESPACE, natural_key).hex[:24]}"
