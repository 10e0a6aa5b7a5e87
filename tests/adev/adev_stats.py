"""Statistical checks of gradient estimators: many vectorised estimates against exact values.

An estimate is unbiased when the mean of ``N`` independent estimates lies
within a few standard errors of the exact value. Every check here draws its
estimates with one jitted ``vmap`` over ``N`` keys, and compares elementwise:

    |mean - exact| < z·SE + atol + rtol·|exact|      (z = 5, atol = 1e-6, rtol = 1e-6)

(``rtol`` absorbs float32 rounding of large exact values; with z = 0 the check asks
every estimate to be exact, as enumeration is.)

``check`` returns a :class:`Verdict` (truthy when it passes) so that a test
can also assert that a deliberately wrong estimator FAILS.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

Z = 5.0
ATOL = 1e-6
N = 50_000

# Compiling dominates (running 50k estimates takes milliseconds): XLA's optimising
# passes would double the suite's time and buy nothing for a program run once.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run_once(fn, *args):
    """``jax.jit(fn)(*args)``, compiled with few optimisations."""
    lowered = jax.jit(fn).lower(*args)
    try:
        compiled = lowered.compile(compiler_options=QUICK_COMPILE)
    except Exception:  # an XLA without these options
        compiled = lowered.compile()
    return compiled(*args)


def sample_estimates(obj, params, n: int = N, seed: int = 0):
    """``n`` independent (value, grads) estimates of ``obj`` at ``params``, as numpy arrays."""
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    values, grads = run_once(jax.vmap(lambda k: obj.value_and_grad(k, params)), keys)
    return np.asarray(values, np.float64), {k: np.asarray(v, np.float64) for k, v in grads.items()}


@dataclass
class Verdict:
    ok: bool
    report: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return self.report


def check(samples, exact, z: float = Z, atol: float = ATOL, rtol: float = 1e-6,
          name: str = "") -> Verdict:
    """Whether the mean of ``samples`` (leading axis: estimates) matches ``exact`` elementwise:
    ``|mean - exact| < z·SE + atol + rtol·|exact|`` (``rtol`` absorbs float32 rounding)."""
    samples = np.asarray(samples, np.float64)
    exact = np.broadcast_to(np.asarray(exact, np.float64), samples.shape[1:])
    n = samples.shape[0]
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(n)
    ok = bool(np.all(np.abs(mean - exact) < z * se + atol + rtol * np.abs(exact)))
    ok = ok and bool(np.all(np.isfinite(mean)))
    report = (f"{name or 'estimate'}: mean {np.round(mean, 5).tolist()} exact "
              f"{np.round(exact, 5).tolist()} SE {np.round(se, 5).tolist()} "
              f"({'within' if ok else 'NOT within'} {z:g} SE + {atol:g}; N={n})")
    return Verdict(ok, report)


def check_all(grads: dict, exact: dict, **kw) -> Verdict:
    """``check`` for every path of ``exact`` (which must name every gradient)."""
    assert set(grads) == set(exact), (sorted(grads), sorted(exact))
    verdicts = [check(grads[k], exact[k], name=k, **kw) for k in sorted(exact)]
    return Verdict(all(verdicts), "\n".join(map(str, verdicts)))


def exact_grad(expectation, params: dict) -> dict:
    """The exact gradient of a closed-form ``expectation(params)`` (unconstrained params)."""
    params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    return {k: np.asarray(v, np.float64) for k, v in jax.grad(expectation)(params).items()}


def assert_unbiased(obj, expectation, n: int = N, seed: int = 0, params=None,
                    check_value: bool = True) -> None:
    """Mean value and gradient of ``obj`` match ``expectation`` (a function of the
    unconstrained parameters dict) and its gradient, within standard errors."""
    if params is None:
        params = obj.init(jax.random.PRNGKey(0))
    values, grads = sample_estimates(obj, params, n, seed)
    verdict = check_all(grads, exact_grad(expectation, params))
    if check_value:
        value = check(values, float(expectation({k: jnp.asarray(v) for k, v in params.items()})),
                      name="value")
        verdict = Verdict(verdict.ok and value.ok, f"{verdict}\n{value}")
    assert verdict, f"{obj!r} with estimators {obj.estimators}:\n{verdict}"
