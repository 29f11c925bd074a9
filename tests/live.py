"""What the live-server tests share: a free local port, the app served by uvicorn from a background thread
(`api.local_server`), and Debian's Chromium with the flags this machine needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from threadline.api.local_server import serve_in_thread as serve
from threadline.product.loopback import free_port

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "free_port", "require_chromium", "serve"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Fail (not skip) when the browser is missing: .ci/run installs it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)")
