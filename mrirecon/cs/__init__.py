"""Total variation and the compressed-sensing solvers (ADMM, primal-dual)."""
