"""Routing: which backend and replica a request goes to, and what happens when one fails.

Weighted routes and experiment arms (assignment, canary), replicas behind a balancer with
circuit breakers and health checks, retries under a budget, fallback chains, shadow copies.
"""
