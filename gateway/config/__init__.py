"""Policy files: typed schema, YAML loading with line-accurate errors, hot reload."""

from gateway.config.loader import PolicyError, Problem, load_policy, parse_policy
from gateway.config.schema import Policy

__all__ = ["Policy", "PolicyError", "Problem", "load_policy", "parse_policy"]
