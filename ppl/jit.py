"""``jit``: ``jax.jit`` with the compile options of this process.

Every program ppl compiles (an entry's functions, a fit's chunk of steps, a
NUTS run) goes through :func:`jit`, so one setting changes how all of them
are compiled. ``PPL_FAST_COMPILE=1`` in the environment turns XLA's backend
optimisation off (``xla_backend_optimization_level=0``): the same programs,
computing the same values, compiled in about two thirds of the time and
running slower. It suits short runs dominated by compiling (a smoke run of
an example, a test suite's quick fits), not long fits. It is read when a
program is first jitted.

    >>> import jax.numpy as jnp
    >>> float(jit(lambda x: x + 1)(jnp.float32(1.0)))
    2.0
"""

from __future__ import annotations

import os
from typing import Callable

import jax

FAST_COMPILE = {"xla_backend_optimization_level": 0}


def compile_options() -> dict:
    """The XLA compile options of programs jitted now (``PPL_FAST_COMPILE``)."""
    return dict(FAST_COMPILE) if os.environ.get("PPL_FAST_COMPILE") == "1" else {}


def jit(f: Callable, **kwargs) -> Callable:
    """``jax.jit(f, **kwargs)``, compiled with :func:`compile_options` where it is called
    at the top level. Called inside another program (a test's ``jax.jit(jax.vmap(step))``)
    it is part of that program, compiled with that program's options: JAX accepts compile
    options only on the outermost jit."""
    options = compile_options()
    plain = jax.jit(f, **kwargs)
    if not options:
        return plain
    fast = jax.jit(f, compiler_options=options, **kwargs)

    def call(*args, **kw):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((args, kw))):
            return plain(*args, **kw)  # its arguments are another program's values
        try:
            return fast(*args, **kw)
        except ValueError as e:  # inside another program that passed it only constants
            if "compiler_options" not in str(e):
                raise
            return plain(*args, **kw)

    return call
