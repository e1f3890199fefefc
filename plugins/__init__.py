"""Extension packages written against the gateway's public protocols."""
