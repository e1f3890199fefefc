"""Log records as one JSON object per line, carrying the request id and trace id in flight.

The pipeline sets `request_context` for the duration of a request; every log line made while
it runs (ours, uvicorn's, httpx's) picks the ids up.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time

import orjson

# (request id, trace id as 32 hex digits or "") of the request this task is serving.
request_context: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "sluice_request", default=None
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = request_context.get()
        if context is not None:
            entry["request_id"] = context[0]
            if context[1]:
                entry["trace_id"] = context[1]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(fmt: str, level: str) -> None:
    """Route the root logger (and uvicorn's) through one handler in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
