"""Sluicegate's gateway: an OpenAI-compatible proxy with policies, auth and upstream routing."""

from gateway.app import create_app
from gateway.config import Policy, PolicyError, load_policy, parse_policy
from gateway.errors import GatewayError

__all__ = ["GatewayError", "Policy", "PolicyError", "create_app", "load_policy", "parse_policy"]
