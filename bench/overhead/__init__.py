"""The gateway-overhead benchmark behind bench/gateway_overhead.py, one concept per module.

cli.main() is the entry point; benchmark.run() reads top to bottom through one whole run.
"""
