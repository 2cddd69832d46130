"""The retraining webhook's OpenAPI document, served at ``GET /openapi.json``.

Built from the same pydantic models that validate the bodies (``monitoring.alerts``), so
the document a client or a fuzzer reads is exactly what the server accepts. It names the
bearer-token requirement of the two alert receivers and every answer they can give: 200
with the decisions, 400 malformed, 401 no or a wrong token, 411 no length, 413 too large,
415 not JSON.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from monitoring.alerts import MAX_ALERTS, AlertmanagerWebhook, PushedAlert

JSON = "application/json"
_REF = "#/components/schemas/{model}"

ERRORS = {
    "400": "Malformed: not the sender's JSON format, or a broken length or chunked framing.",
    "401": "No bearer token, or not the configured one.",
    "411": "Neither Content-Length nor Transfer-Encoding: chunked.",
    "413": "The body is larger than the limit (refused before it is read).",
    "415": "The body is not declared as application/json.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _receiver(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    def answer(description: str, schema: str) -> dict[str, Any]:
        return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}

    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
            "responses": {
                "200": answer("One decision per use case asking for retraining.", "Decisions"),
                **{code: answer(why, "Error") for code, why in ERRORS.items()},
            },
        }
    }


def _get(summary: str, media: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": [],
            "responses": {"200": {"description": summary, "content": {media: {"schema": schema}}}},
        }
    }


@lru_cache(maxsize=1)
def openapi() -> dict[str, Any]:
    """The document (OpenAPI 3.1, whose schemas are JSON Schema 2020-12 as pydantic's)."""
    _, defs = models_json_schema(
        [(AlertmanagerWebhook, "validation"), (PushedAlert, "validation")], ref_template=_REF
    )
    schemas = dict(defs["$defs"])
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    }
    schemas["Decisions"] = {
        "type": "object",
        "required": ["decisions"],
        "properties": {"decisions": {"type": "array", "items": {"type": "object"}}},
    }
    push = {"type": "array", "items": _ref("PushedAlert"), "maxItems": MAX_ALERTS}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shipway retraining trigger",
            "version": "1",
            "description": "Alert receivers that start a gated retraining (with a cooldown).",
        },
        "paths": {
            "/alertmanager": _receiver(
                "Alertmanager webhook (webhook_configs receiver)", _ref("AlertmanagerWebhook")
            ),
            "/api/v2/alerts": _receiver(
                "Prometheus alert push (alerting.alertmanagers pointing here)", push
            ),
            "/healthz": _get(
                "Liveness",
                JSON,
                {"type": "object", "properties": {"status": {"const": "ok"}}},
            ),
            "/metrics": _get("Prometheus metrics", "text/plain", {"type": "string"}),
            "/openapi.json": _get("This document", JSON, {"type": "object"}),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
