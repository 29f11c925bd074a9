"""Dependency aliases for routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from threadline.core.errors import StoreUnavailableError
from threadline.product.services import Services


def services_of(request: Request) -> Services:
    """The services opened at start-up."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        raise StoreUnavailableError("the service is starting")
    assert isinstance(services, Services)
    return services


async def get_services(request: Request) -> Services:
    """`services_of` as a dependency. A coroutine, so FastAPI calls it on the event loop: a plain function would
    be sent to the thread pool, a hop per request that waits behind the running turns for a thread and the GIL."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]
