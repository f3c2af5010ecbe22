"""Side-by-side benchmarks (``ibet bench NAME``): ours against a named baseline, as a ratio."""
