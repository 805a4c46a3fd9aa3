"""Benchmarks, run on purpose: ``python -m benchmarks SUITE [--quick] [--json FILE]``."""
