"""Upstreams: where requests go after the pipeline; one pooled client per configured backend."""

from gateway.upstream.openai import OpenAIUpstream, UpstreamReply

__all__ = ["OpenAIUpstream", "UpstreamReply"]
