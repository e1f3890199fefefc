"""bench/kernels.py's parts: timing, decode attention, decode tokens/s, int8 products."""
