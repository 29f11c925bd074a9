"""`create_app(settings)`: the FastAPI application factory and composition root."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from uvicorn.config import STARTUP_FAILURE

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
from threadline.core.auth import DEMO_BOOTSTRAP_KEYS, Role, parse_bootstrap
from threadline.core.rate_limits import RateLimiter
from threadline.core.redaction import install_log_redaction, install_trace_redaction
from threadline.core.settings import Settings, get_settings
from threadline.memory.retention import RetentionPolicy, run_in_background
from threadline.product.services import open_services
from threadline.product.tuning import settle_after_startup

log = logging.getLogger("threadline")


def create_app(
    settings: Settings | None = None, *, start_in_background: bool = False, announce_ready: bool = False
) -> FastAPI:
    """Build the application; services open in the lifespan, so importing and building are side-effect free.

    With `start_in_background` the server accepts connections while the services open (`/healthz` answers,
    `/readyz` and the API say the service is starting); a start that fails then ends the process with uvicorn's
    start-up failure status. `announce_ready` logs the pages' links once the services are open."""
    settings = settings or get_settings()

    async def start(app: FastAPI) -> None:
        services = await run_in_threadpool(partial(open_services, settings, dispatch=True))
        try:
            settle_after_startup()
            await run_in_threadpool(bootstrap_keys, settings, services.stores)
            if settings.retention_at_startup and (policy := RetentionPolicy.from_settings(settings)).active:
                app.state.retention = run_in_background(services.db, policy)  # readiness never waits for it
        except BaseException:
            services.close()
            raise
        app.state.services = services  # ready from here: the keys are on file
        if announce_ready:
            log.info("%s", ready_message(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.getLogger("threadline").setLevel(settings.log_level.upper())
        install_log_redaction()  # logs never carry card numbers, emails or phone numbers
        install_trace_redaction()  # nor do LangSmith traces, when tracing is on
        starting = None
        if start_in_background:
            starting = asyncio.create_task(start(app))
            starting.add_done_callback(_exit_if_failed)
        else:
            await start(app)
        try:
            yield
        finally:
            if starting is not None:
                with suppress(Exception):
                    await starting  # a start in progress finishes before its services close
            if (services := getattr(app.state, "services", None)) is not None:
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
    """Factory for `uvicorn --factory` (one call per worker process), as `threadline serve` runs it. One worker
    starts in the background, so its `/readyz` tells a starting process from a dead one; with several, each
    worker accepts connections only once its services are open, since a probe's answer comes from any one of
    them."""
    settings = get_settings()
    return create_app(settings, start_in_background=settings.workers == 1, announce_ready=True)


def ready_message(settings: Settings) -> str:
    """What a person starting the server needs next: the pages' links (and the demo agent key while the public
    demo keys are the configured ones)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)  # where this machine reaches it
    base = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"
    configured = settings.bootstrap_keys.get_secret_value() if settings.bootstrap_keys else None
    demo_keys = configured == DEMO_BOOTSTRAP_KEYS
    agent_key = dict(parse_bootstrap(DEMO_BOOTSTRAP_KEYS))[Role.AGENT]
    pages = [
        *([("chat as a demo customer", "/demo", "")] if settings.demo_page else []),
        ("agent console", "/console", f"  (demo agent key {agent_key})" if demo_keys else ""),
        ("analytics dashboard", "/dashboard", ""),
        ("API docs", "/docs", ""),
    ]
    lines = [f"Threadline is ready on {base}"]
    lines += [f"  {label:<24}{base}{path}{note}" for label, path, note in pages]
    return "\n".join(lines)


def _exit_if_failed(starting: asyncio.Task[None]) -> None:
    """A background start that failed: log why and end the process as uvicorn ends one whose start failed."""
    if starting.cancelled() or (error := starting.exception()) is None:
        return
    log.critical("start-up failed", exc_info=error)
    logging.shutdown()
    os._exit(STARTUP_FAILURE)
