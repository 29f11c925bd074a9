"""The OpenAPI description is complete: every route, its success schema, and the errors it can answer."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import expect, sync_playwright

from tests.live import CHROMIUM, CHROMIUM_ARGS, free_port, require_chromium
from threadline.api.app import create_app
from threadline.core.settings import Settings


def test_every_route_is_described_with_its_success_and_error_responses(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, load_demo=False))  # the schema needs no database
    schema = app.openapi()
    paths = schema["paths"]
    expected = {
        "/v1/messages",
        "/v1/customers/{customer_id}",
        "/v1/customers/{customer_id}/timeline",
        "/v1/customers/merges",
        "/v1/channels/twilio/sms",
        "/v1/channels/twilio/voice",
        "/v1/channels/email",
        "/v1/channels/social",
        "/v1/store/messages",
        "/v1/knowledge/articles",
        "/healthz",
        "/readyz",
    }
    assert expected <= set(paths)
    error_ref = "#/components/schemas/ErrorOut"
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert operation.get("summary") and operation.get("description"), f"{method} {path}: no docstring"
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert success, f"{method} {path}: no success response"
            assert operation["responses"][success[0]].get("content"), f"{method} {path}: success has no body"
            for code in ("422", "429", "503"):
                if (path, code) == ("/readyz", "503"):  # readiness answers 503 with its own check report
                    continue
                body = operation["responses"][code]["content"]["application/json"]["schema"]
                assert body == {"$ref": error_ref}, f"{method} {path} {code}"
    assert {"ErrorOut", "MessageIn", "MessageOut", "CustomerProfile", "TimelineEntry"} <= set(
        schema["components"]["schemas"]
    )
    secured = paths["/v1/customers/{customer_id}"]["get"]
    assert {"401", "403"} <= set(secured["responses"]) and secured.get("security")
    assert "401" in paths["/v1/channels/twilio/sms"]["post"]["responses"]


def test_the_docs_page_loads_everything_from_the_app_itself(tmp_path: Path) -> None:
    """/docs works offline: no URL in the page leaves the server, and every script, style and icon it names is
    served by the app (Swagger UI's vendored files) without start-up having run."""
    client = TestClient(create_app(Settings(data_dir=tmp_path, load_demo=False)))
    page = client.get("/docs")
    assert page.status_code == 200
    assert not re.findall(r"https?:|//", page.text)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3
    kinds = {asset.rsplit(".", 1)[1]: client.get(asset) for asset in assets}
    assert {kind: answer.status_code for kind, answer in kinds.items()} == {"js": 200, "css": 200, "png": 200}
    assert "SwaggerUIBundle" in kinds["js"].text and kinds["css"].headers["content-type"].startswith("text/css")
    assert re.search(r"url: '(/openapi\.json)'", page.text) and client.get("/openapi.json").status_code == 200
    assert client.get("/redoc").status_code == 404  # its page would load ReDoc from a CDN: not served


@pytest.mark.slow
def test_the_docs_page_renders_in_a_browser_with_no_request_off_the_server(tmp_path: Path) -> None:
    require_chromium()
    app = create_app(Settings(data_dir=tmp_path, load_demo=False))
    server = uvicorn.Server(uvicorn.Config(app, port=(port := free_port()), lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        while not server.started and thread.is_alive():
            time.sleep(0.05)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{base}/docs")
            expect(page.locator(".opblock-summary-path", has_text="/v1/messages").first).to_be_visible(timeout=30_000)
            browser.close()
        assert requested and all(url.startswith(base) for url in requested), requested
    finally:
        server.should_exit = True
        thread.join(timeout=30)
