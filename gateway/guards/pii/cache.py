"""What the PII guard already found in a text, by the text's digest: a bounded LRU.

Clients resend a conversation's whole history every turn; with this cache only the new
messages are analysed. Keys are BLAKE2b digests, so the cache never keeps the texts (or the
PII in them) alive; values are the detections as spans. Used from the event loop only.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from gateway.guards.window import Span

Detections = tuple[Span, ...]


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class DetectionCache:
    """Least-recently-used detections, at most `max_entries` of them (0: no caching)."""

    __slots__ = ("_entries", "hits", "max_entries", "misses")

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, Detections] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> Detections | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: bytes, detections: Detections) -> None:
        if self.max_entries <= 0:
            return
        self._entries[key] = detections
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
