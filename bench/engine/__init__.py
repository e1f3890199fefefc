"""The engine-throughput benchmark behind bench/engine_throughput.py, one concept per module.

cli.main() is the entry point; benchmark.run() reads top to bottom through one whole run; each
measured phase runs in its own worker process (worker.py), pinned with taskset when asked.
"""
