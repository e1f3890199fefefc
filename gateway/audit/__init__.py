"""The audit log: one hash-chained record per request, written off the request path, and the
tools that verify, export and purge it."""
