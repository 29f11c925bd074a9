"""API keys and roles: who may call which endpoint. Keys are stored hashed; the raw key is shown once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from threadline.core.errors import ConfigurationError

BOOTSTRAP_VARIABLE = "THREADLINE_BOOTSTRAP_KEYS"
MIN_KEY_CHARS = 16


DEMO_BOOTSTRAP_KEYS = (
    "channel:demo-channel-key-0001,agent:demo-agent-key-00001,admin:demo-admin-key-00001,qa:demo-qa-key-000001,"
    "associate:demo-associate-key-01"
)
"""The public demo keys, one per role, that `make run` bootstraps unless THREADLINE_BOOTSTRAP_KEYS is set."""

AUTH_CACHE_TTL_S = 5.0
"""Seconds a successful authentication is reused by an API worker: the longest a revoked key keeps working."""


class Role(StrEnum):
    """What an API key may do."""

    CHANNEL = "channel"  # a channel integration: posts customer messages
    AGENT = "agent"  # a human agent's console: reads customers, links handles, merges
    ADMIN = "admin"  # everything, including editing the knowledge base
    QA = "qa"  # QA and CX leads: read-only customer views
    ASSOCIATE = "associate"  # an in-store associate's device


class ApiKey(BaseModel):
    """An API key as stored: never the key itself, only a short prefix to recognise it by."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    name: str
    role: Role
    prefix: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Principal:
    """The caller a request was authenticated as."""

    key_id: str
    name: str
    role: Role


def key_problem(key: str) -> str | None:
    """Why `key` cannot be an API key, or None when it can."""
    if not key:
        return "the key is empty"
    if any(c.isspace() for c in key):
        return "the key contains whitespace"
    if len(key) < MIN_KEY_CHARS:
        return f"the key is shorter than {MIN_KEY_CHARS} characters"
    return None


def parse_bootstrap(value: str) -> list[tuple[Role, str]]:
    """Parse ``role:key,role:key``; blank entries are skipped. Errors name the variable, never echo a key."""
    roles = ", ".join(Role)
    parsed: list[tuple[Role, str]] = []
    seen: dict[str, Role] = {}
    for position, raw in enumerate(value.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        where = f"{BOOTSTRAP_VARIABLE} entry {position}"
        if ":" not in entry:
            raise ConfigurationError(f"{where} is not 'role:key' (roles: {roles})")
        role_name, key = (part.strip() for part in entry.split(":", 1))
        try:
            role = Role(role_name.lower())
        except ValueError:
            raise ConfigurationError(f"{where} has an unknown role {role_name!r} (roles: {roles})") from None
        if problem := key_problem(key):
            raise ConfigurationError(f"{where} ({role.value}): {problem}")
        if key in seen:
            if seen[key] is not role:
                raise ConfigurationError(
                    f"{where} ({role.value}): the same key is also given as a {seen[key].value} key"
                )
            continue
        seen[key] = role
        parsed.append((role, key))
    return parsed
