"""`create_app(settings)`: the FastAPI application factory and composition root."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from threadline.api.auth import bootstrap_keys, document_auth
from threadline.api.errors import COMMON_ERRORS, install_error_handlers
from threadline.api.limits import LimitsMiddleware
from threadline.api.routes import (
    analytics,
    channels,
    console,
    customers,
    dashboard,
    docs,
    events,
    handoffs,
    health,
    knowledge,
    messages,
)
from threadline.api.routes import demo as demo_page
from threadline.core.rate_limits import RateLimiter
from threadline.core.redaction import install_log_redaction, install_trace_redaction
from threadline.core.settings import Settings, get_settings
from threadline.memory.retention import RetentionPolicy, run_in_background
from threadline.product.services import open_services
from threadline.product.tuning import settle_after_startup


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; services open in the lifespan, so importing and building are side-effect free."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("threadline").setLevel(settings.log_level.upper())
        install_log_redaction()  # logs never carry card numbers, emails or phone numbers
        install_trace_redaction()  # nor do LangSmith traces, when tracing is on
        services = await run_in_threadpool(open_services, settings)
        settle_after_startup()
        app.state.services = services
        try:
            await run_in_threadpool(bootstrap_keys, settings, services.stores)
            if settings.retention_at_startup and (policy := RetentionPolicy.from_settings(settings)).active:
                app.state.retention = run_in_background(services.db, policy)  # readiness never waits for it
            yield
        finally:
            services.close()

    app = FastAPI(
        title="Threadline",
        version="0.1.0",
        summary="Omnichannel AI customer support for retailers.",
        lifespan=lifespan,
        responses=COMMON_ERRORS,
        docs_url=None,  # served by `docs.install`, from vendored assets rather than a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.anonymous_search = RateLimiter(settings.rate_anonymous_search_per_minute)
    app.add_middleware(
        LimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        per_key=RateLimiter(settings.rate_per_key_per_minute),
    )
    install_error_handlers(app)
    document_auth(app)
    app.include_router(health.router)
    app.include_router(messages.router)
    app.include_router(knowledge.router)
    app.include_router(customers.router)
    app.include_router(channels.router)
    app.include_router(handoffs.router)
    app.include_router(events.router)
    app.include_router(analytics.router)
    console.install(app)  # the agent console: a page over the keyed API, holding no data itself
    dashboard.install(app)  # the analytics dashboard, likewise a page over the keyed analytics API
    docs.install(app)  # the OpenAPI page, with no third-party origin
    if settings.demo_page:  # speaks as demo customers: opt-in, and on loopback unless explicitly allowed
        demo_page.install(app, settings.rate_per_sender_per_minute)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (one call per worker process)."""
    return create_app()
