"""Benchmarks, ablations and the complexity table."""
