"""Upstreams: where requests go after the pipeline; one client per configured backend,
an HTTP pool (`kind: openai`) or the engine in-process (`kind: builtin`)."""

from gateway.upstream.builtin import BuiltinReply, BuiltinUpstream
from gateway.upstream.interface import Reply, Retryable, Upstream
from gateway.upstream.openai import OpenAIUpstream, UpstreamReply

__all__ = [
    "BuiltinReply",
    "BuiltinUpstream",
    "OpenAIUpstream",
    "Reply",
    "Retryable",
    "Upstream",
    "UpstreamReply",
]
