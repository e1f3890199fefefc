"""The one exception the benchmark raises on purpose.

main() turns it into an ERROR line on stderr and exit status 1.
"""

from __future__ import annotations


class BenchError(Exception):
    """A failure that ends the benchmark with a clear message."""
