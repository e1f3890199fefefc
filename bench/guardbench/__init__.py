"""The guard benchmark (bench/guards.py): latency of each guard and of the input pipeline, and
detection quality on labeled data. One module per concept; benchmark.py reads top to bottom."""
