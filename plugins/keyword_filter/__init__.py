"""An example guard plugin: blocks or redacts configured keywords and patterns.

In this repository: `path: plugins.keyword_filter:KeywordFilterGuard`. Installed as its own
distribution (`pip install plugins/keyword_filter`): `path: keyword_filter`, the entry point.
"""

from .guard import KeywordFilterConfig, KeywordFilterGuard

__all__ = ["KeywordFilterConfig", "KeywordFilterGuard"]
