"""Triton kernels for the GPU engine, each beside a plain PyTorch reference with the same signature.

Import the modules directly (`backend.kernels.paged_decode`); this package imports nothing eagerly.
"""
