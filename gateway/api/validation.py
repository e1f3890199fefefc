"""Turns a request body into a validated request model, or a 400 that names the offending field.

Parsing and validation are one pass in pydantic-core; the error path re-reads the JSON to name
fields the way the client wrote them (union labels in pydantic's error locations are dropped).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from gateway.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


def parse_request(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _to_invalid_request(exc, body) from None


def strict_json(body: bytes) -> Any:
    """Decode a body the schema already accepted, as strict JSON (RFC 8259).

    pydantic-core accepts NaN, Infinity and numbers beyond a double; orjson cannot carry them
    on, so such a body is the client's mistake, said once here for every place that re-reads it.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "The request body is not strict JSON: it holds NaN, Infinity or a number "
            "too large for a double.",
            code="invalid_json",
        ) from None


def _to_invalid_request(exc: ValidationError, body: bytes) -> InvalidRequest:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return InvalidRequest(
            "We could not parse the JSON body of your request: it is not valid JSON.",
            code="invalid_json",
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        # pydantic-core parsed what orjson refuses (NaN, Infinity, numbers beyond a double):
        # read it the way pydantic did, to name the field all the same.
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return InvalidRequest(
                "We could not parse the JSON body of your request: it is not valid JSON.",
                code="invalid_json",
            )
    if not isinstance(data, dict):
        return InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    best: tuple[int, str, str] | None = None
    for error in errors:
        path = _client_path(data, tuple(error["loc"]), error["type"])
        if best is None or len(path) > best[0]:
            best = (len(path), format_param(path), _message(error))
    assert best is not None
    _, param, message = best
    extra = len(errors) - 1
    suffix = f" ({extra} more problem{'s' if extra > 1 else ''} in this request)" if extra else ""
    return InvalidRequest(f"Invalid value for '{param}': {message}{suffix}", param=param)


def _message(error: Any) -> str:
    if error["type"] == "missing":
        return "this field is required"
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return str(error["msg"]).replace("tag", "value", 1)
    return str(error["msg"])


def _client_path(data: Any, loc: tuple[Any, ...], kind: str) -> tuple[Any, ...]:
    """Walk `loc` through the client's data, keeping only steps that exist there."""
    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif kind == "missing" and i == len(loc) - 1:
            path.append(part)
    if kind in ("union_tag_invalid", "union_tag_not_found") and isinstance(node, dict):
        path.append("role" if "role" in node or "type" not in node else "type")
    return tuple(path)


def format_param(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
