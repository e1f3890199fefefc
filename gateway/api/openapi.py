"""The OpenAPI 3.1 document served at /openapi.json, generated from the request schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from gateway.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def _error_responses(*statuses: int) -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {str(s): {"description": "OpenAI-shaped error", **ref} for s in statuses}


def _inference(summary: str, schema: str, streams: bool) -> dict[str, Any]:
    content = {"application/json": {"schema": {"type": "object"}}}
    if streams:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
                },
            },
            "responses": {
                "200": {"description": "the upstream's answer", "content": content},
                **_error_responses(400, 401, 403, 404, 413, 429, 502, 503, 504),
            },
        }
    }


def _json_post(
    summary: str, schema: str, errors: tuple[int, ...], ok: str = "200"
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
                },
            },
            "responses": {ok: {"description": "ok"}, **_error_responses(*errors)},
        }
    }


@cache
def openapi_document() -> dict[str, Any]:
    from gateway.feedback import FeedbackRequest
    from gateway.guards.moderation.endpoint import ModerationRequest

    requests = (
        ChatCompletionRequest,
        CompletionRequest,
        EmbeddingRequest,
        ModerationRequest,
        FeedbackRequest,
    )
    _, defs = models_json_schema(
        [(m, "validation") for m in requests], ref_template="#/components/schemas/{model}"
    )
    schemas = {**defs.get("$defs", {}), "Error": _ERROR}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Sluicegate", "version": "0.1.0"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/chat/completions": _inference("Chat completion", "ChatCompletionRequest", True),
            "/v1/completions": _inference("Text completion", "CompletionRequest", True),
            "/v1/embeddings": _inference("Embeddings", "EmbeddingRequest", False),
            "/v1/moderations": _json_post(
                "Moderation scores (OpenAI's shape), from the policy's moderation guard",
                "ModerationRequest",
                (400, 401, 413, 503),
            ),
            "/v1/feedback": _json_post(
                "A score for an earlier response, recorded in the audit log",
                "FeedbackRequest",
                (400, 401, 404, 413, 503),
                ok="202",
            ),
            "/v1/models": {
                "get": {
                    "summary": "Models this key may use",
                    "responses": {"200": {"description": "model list"}, **_error_responses(401)},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Alive",
                    "security": [],
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Upstreams reachable",
                    "security": [],
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
        },
    }
