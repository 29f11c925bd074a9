"""Dependency aliases for routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from threadline.core.errors import StoreUnavailableError
from threadline.product.services import Services


def get_services(request: Request) -> Services:
    """The services opened at start-up."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        raise StoreUnavailableError("the service is starting")
    assert isinstance(services, Services)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
