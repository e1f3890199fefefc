"""Sluicegate's built-in inference engine (paged KV cache, continuous batching); see docs/."""
