"""Side-by-side benchmarks: our code and the alternatives in one process run, with ratios."""
