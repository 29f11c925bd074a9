"""The OpenAPI description is complete: every route, its success schema, and the errors it can answer."""

from __future__ import annotations

from pathlib import Path

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
