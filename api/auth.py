"""API keys over HTTP: `Authorization: Bearer <key>`, the roles each endpoint admits, and the start-up bootstrap.

Authentications are cached per process for `AUTH_CACHE_TTL_S` seconds so a busy key is not a database read per
request; a revoked key is therefore refused by every worker within that many seconds, not at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from threadline.api.deps import ServicesDep, services_of
from threadline.core.auth import AUTH_CACHE_TTL_S, BOOTSTRAP_VARIABLE, ApiKey, Principal, Role, parse_bootstrap
from threadline.core.errors import AuthenticationError, PermissionDeniedError
from threadline.core.settings import Settings
from threadline.memory.repositories.api_keys import hash_key
from threadline.memory.stores import Stores
from threadline.product.services import Services

log = logging.getLogger("threadline")

_CACHE_MAX_ENTRIES = 4096
LEGACY_ADMIN_KEY = "THREADLINE_ADMIN_API_KEY"

MISSING_KEY = "an API key is required: send Authorization: Bearer <key>"
NOT_BEARER = "the Authorization header must be 'Bearer <key>'"
INVALID_KEY = "the API key is not valid (unknown or revoked)"

SCHEME = "ApiKey"
bearer = HTTPBearer(
    auto_error=False,
    scheme_name=SCHEME,
    description="An API key with a role (channel, agent, admin, qa, associate): `Authorization: Bearer <key>`. "
    "Create one with `threadline keys create`.",
)


# --- start-up ---------------------------------------------------------------------------------------------------


def bootstrap_keys(settings: Settings, stores: Stores) -> list[ApiKey]:
    """Store the keys of THREADLINE_BOOTSTRAP_KEYS (and THREADLINE_ADMIN_API_KEY as an admin key) if missing.

    Idempotent, and safe when several workers start at once. A malformed value raises `ConfigurationError`; a key
    already on file with another role raises `ConflictError`. Dropping an entry does not revoke its key (use
    `threadline keys revoke`), but the legacy admin key follows its variable: a changed or removed value revokes
    the admin key stored for the old one.
    """
    entries = parse_bootstrap(settings.bootstrap_keys.get_secret_value()) if settings.bootstrap_keys else []
    keys = [
        stores.api_keys.ensure(role, key, name=f"bootstrap {role.value}", created_by=BOOTSTRAP_VARIABLE)
        for role, key in entries
    ]
    legacy = settings.admin_api_key.get_secret_value() if settings.admin_api_key else ""
    current = (
        stores.api_keys.ensure(Role.ADMIN, legacy, name=LEGACY_ADMIN_KEY, created_by=LEGACY_ADMIN_KEY)
        if legacy
        else None
    )
    for stale in stores.api_keys.list():
        if stale.created_by == LEGACY_ADMIN_KEY and (current is None or stale.id != current.id):
            stores.api_keys.revoke(stale.id)
            log.info("revoked the admin key of a former %s (%s)", LEGACY_ADMIN_KEY, stale.id)
    keys += [current] if current else []
    for key in keys:
        if key.revoked_at is not None:
            log.warning(
                "start-up key %r (%s) is revoked and stays revoked; remove it from the settings", key.name, key.id
            )
    return keys


# --- per request ----------------------------------------------------------------------------------------------


class _AuthCache:
    """Successful authentications by key hash, each for `AUTH_CACHE_TTL_S` seconds (read at every store)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._entries[digest]
                return None
            return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        ttl = AUTH_CACHE_TTL_S
        if ttl <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= _CACHE_MAX_ENTRIES:
                self._entries = {d: e for d, e in self._entries.items() if e[0] > now}
                if len(self._entries) >= _CACHE_MAX_ENTRIES:
                    self._entries.clear()
            self._entries[digest] = (now + ttl, principal)


_cache_lock = threading.Lock()


def _cache_of(request: Request) -> _AuthCache:
    """The application's cache (one per app, so apps over different databases never share answers)."""
    state = request.app.state
    cache = getattr(state, "auth_cache", None)
    if cache is None:
        with _cache_lock:
            cache = getattr(state, "auth_cache", None)
            if cache is None:
                cache = state.auth_cache = _AuthCache()
    assert isinstance(cache, _AuthCache)
    return cache


def _bearer_key(request: Request) -> str:
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise AuthenticationError(MISSING_KEY)
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError(NOT_BEARER)
    if not key.strip():
        raise AuthenticationError(MISSING_KEY)
    return key.strip()


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def authorize(request: Request, services: Services, *roles: Role) -> Principal:
    """The caller, if its key is valid and has one of `roles`; also kept on `request.state.principal`."""
    key = _bearer_key(request)
    digest = hash_key(key)
    cache = _cache_of(request)
    principal = cache.get(digest)
    if principal is None:
        record = services.stores.api_keys.authenticate(key)
        if record is None:
            raise AuthenticationError(INVALID_KEY)
        principal = Principal(key_id=record.id, name=record.name, role=record.role)
        cache.put(digest, principal)
    return _admit(request, principal, roles)


def _admit(request: Request, principal: Principal, roles: tuple[Role, ...]) -> Principal:
    request.state.principal = principal
    if principal.role not in roles:
        role, admitted = principal.role.value, _admitted(request, roles)
        raise PermissionDeniedError(
            f"{_article(role)} {role} key cannot use this endpoint; it needs one of: {', '.join(admitted)}"
        )
    return principal


async def authorize_async(request: Request, services: Services, *roles: Role) -> Principal:
    """`authorize` on the event loop: a key in the cache is checked there, and only a database read (a key not
    seen for `AUTH_CACHE_TTL_S` seconds) goes to the thread pool."""
    principal = _cache_of(request).get(hash_key(_bearer_key(request)))
    if principal is None:
        return await run_in_threadpool(authorize, request, services, *roles)
    return _admit(request, principal, roles)


async def authorize_route(request: Request) -> None:
    """Check the caller against the guards of the route `request` matched, for a request refused before its
    dependencies ran (a body that is not JSON): an unknown caller learns nothing about what the route expects. On
    the event loop like the guards: only a key not in the cache is read from the database, on the thread pool."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and (roles := _roles_guarding(route.dependant)):
        await authorize_async(request, services_of(request), *roles)


def _admitted(request: Request, roles: tuple[Role, ...]) -> tuple[Role, ...]:
    """`roles` narrowed by every other guard on the route (a router's guard and a route's both apply), so a
    refusal names the roles that would really get through."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return roles
    guarded = _roles_guarding(route.dependant)
    return tuple(r for r in roles if r in guarded) if guarded else roles


_guards: dict[Callable[..., Awaitable[Principal]], tuple[Role, ...]] = {}
_ROLE_SEP = "|"


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting keys with one of `roles` and returning the `Principal`:
    `dependencies=[Depends(require_roles(Role.AGENT, Role.ADMIN))]`."""
    if not roles:
        raise ValueError("require_roles needs at least one role")

    # OpenAPI 3.1 lets a non-OAuth security requirement list role names. FastAPI merges the scopes of every
    # guard on a route (a router's and a route's), so each guard's roles travel as one "a|b" token and
    # `document_auth` turns them into the roles all guards admit.
    # A coroutine, so a cached key is checked on the event loop rather than in a thread-pool hop per request.
    async def guard(
        request: Request,
        services: ServicesDep,
        _credentials: HTTPAuthorizationCredentials | None = Security(bearer, scopes=[_ROLE_SEP.join(roles)]),  # noqa: B008
    ) -> Principal:
        return await authorize_async(request, services, *roles)

    _guards[guard] = roles
    return guard


def roles_dependency(*roles: Role) -> Any:
    """`Depends(require_roles(*roles))`, for `dependencies=[...]` lists."""
    return Depends(require_roles(*roles))


# --- OpenAPI ------------------------------------------------------------------------------------------------------

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


# --- which roles a route admits -------------------------------------------------------------------------------


def _guard_role_sets(dependant: Dependant) -> list[tuple[Role, ...]]:
    found: list[tuple[Role, ...]] = []
    for sub in dependant.dependencies:
        if sub.call is not None and sub.call in _guards:
            found.append(_guards[sub.call])
        found += _guard_role_sets(sub)
    return found


def _roles_guarding(dependant: Dependant) -> tuple[Role, ...]:
    """The roles every guard among the dependencies admits (empty when nothing guards them)."""
    sets = _guard_role_sets(dependant)
    return tuple(r for r in sets[0] if all(r in other for other in sets[1:])) if sets else ()


def _describe_refusals(schema: dict[str, Any]) -> None:
    """On every operation an API key guards: one requirement naming the roles all its guards admit, and the
    401 and 403 answers."""
    content = {"application/json": {"schema": _ERROR_SCHEMA}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            requirements = operation.get("security") if isinstance(operation, dict) else None
            tokens = [token for req in requirements or [] for token in req.get(SCHEME, [])]
            if not tokens:
                continue
            role_lists = [token.split(_ROLE_SEP) for token in tokens]
            admitted = [r for r in role_lists[0] if all(r in other for other in role_lists[1:])]
            operation["security"] = [{SCHEME: admitted}]
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", {"description": "No API key, or one unknown or revoked.", "content": content})
            responses.setdefault(
                "403", {"description": f"The key's role is not one of: {', '.join(admitted)}.", "content": content}
            )


def document_auth(app: FastAPI) -> None:
    """Make the OpenAPI schema show, on each guarded operation, the roles it admits and its 401/403 answers
    (applied whenever the schema is built, so routers included later are covered too)."""
    build = app.openapi
    described: list[dict[str, Any]] = []  # the schema last described (FastAPI caches and returns the same dict)

    def openapi() -> dict[str, Any]:
        schema = build()
        if not described or described[0] is not schema:
            _describe_refusals(schema)
            described[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
