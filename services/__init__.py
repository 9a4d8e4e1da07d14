"""The four services of servicemonth, and the composition root (CLI, ``up``, demo)."""
