"""Dependency aliases for routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.services import Services
from core.errors import AuthenticationError, PermissionDeniedError, StoreUnavailableError


def get_services(request: Request) -> Services:
    """The services opened at start-up."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        raise StoreUnavailableError("the service is starting")
    assert isinstance(services, Services)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def require_admin(request: Request, services: ServicesDep) -> None:
    """Only callers holding THREADLINE_ADMIN_API_KEY (as `Authorization: Bearer …`) may edit."""
    key = services.settings.admin_api_key
    if key is None:
        raise PermissionDeniedError("editing over HTTP is off: set THREADLINE_ADMIN_API_KEY (or use threadline kb)")
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise AuthenticationError("a valid admin key is required (Authorization: Bearer …)")


AdminDep = Depends(require_admin)
