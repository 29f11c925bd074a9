"""`create_app(settings)`: the FastAPI application factory and composition root."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api.errors import install_error_handlers
from api.routes import customers, health, knowledge, messages
from api.services import open_services
from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; services open in the lifespan, so importing and building are side-effect free."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("threadline").setLevel(settings.log_level.upper())
        services = await run_in_threadpool(open_services, settings)
        app.state.services = services
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="Threadline",
        version="0.1.0",
        summary="Omnichannel AI customer support for retailers.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(messages.router)
    app.include_router(knowledge.router)
    app.include_router(customers.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (one call per worker process)."""
    return create_app()
