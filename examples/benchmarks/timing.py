"""Side-by-side timing for the benchmark scripts (vae.py, discrete.py).

    >>> # time_steps({"ppl": step_a, "jax": step_b}, params, keys, x, reps=50)
    >>> # -> {"ppl": (median seconds per step, first-call seconds), "jax": (...)}
"""

from __future__ import annotations

import statistics
import time

import jax


def time_steps(steps: dict, params, keys, x, reps: int) -> dict:
    """Median seconds per step and first-call seconds, for each step, interleaved.

    Each repetition runs every implementation once, in turn, so that the
    machine's noise (other processes, frequency changes) hits them alike.
    ``keys`` needs ``reps + 4`` keys: one for the first call, three of warm-up.
    """
    compile_s, times = {}, {name: [] for name in steps}
    for name, step in steps.items():
        t0 = time.perf_counter()
        jax.block_until_ready(step(params, keys[0], x))
        compile_s[name] = time.perf_counter() - t0
        for k in keys[1:4]:
            jax.block_until_ready(step(params, k, x))
    for r in range(reps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            jax.block_until_ready(step(params, keys[4 + r], x))
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), compile_s[name]) for name in steps}
