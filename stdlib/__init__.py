"""The standard library: distributions, builtin functions, initialisers, constraints and objectives."""
