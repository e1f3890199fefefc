"""Experiment reports: per-arm metrics and significance tests read back from the audit log."""
