"""Benchmarks: `python -m bench NAME` prints a readable table, then one JSON line of figures (name → number)."""
