"""Differential tests of the estimator machinery: a grid of generated objectives.

Each case is a small ``expect`` block written as text from parts: a context
(a scalar choice, a plate of size 1 or 3, nested plates 2×2, a ``for`` loop
of 3), a discrete choice (``bernoulli`` by probability or logits, a
3-way ``categorical``) feeding a continuous one (``normal(mu + b/2, s)``),
each under an estimator (reinforce, enum, mvd; reparam, reinforce, mvd), a
per-element value mixing them (``where``, a traced ``if`` on the continuous
or on the discrete choice, int and bool arithmetic and casts,
``stop_gradient``), reduced by a sum or a mean over the plates, plus an
integer term of the discrete choices (their count, or its square: not a sum
over elements). Every case's exact expectation is computed in plain JAX:
the joint support of the discrete choices is enumerated, and each element's
continuous choice is integrated by quadrature on a fixed grid (exact for the
jumps of ``if`` and casts).

All cases are summed into one objective, compiled once with the fast paths
(separable blocks, Rao-Blackwellised reinforce, the forward-only weak
derivatives) and once without (``Site.use_separability`` off). Checked:

- each case's gradient (its own parameters), and the summed value, from the
  mean of 20,000 vectorised estimates, within 5 standard errors of the exact
  values, with and without the fast paths;
- the fast and the general evaluation give the same estimates on the same
  keys (to float tolerance) for every case whose fast path is a rewriting of the
  same estimator (mvd, reparam, and choices outside plates); enum's exact
  separable sums and Rao-Blackwellised reinforce differ per key by design, and are
  compared by their means above.

Defects found by these tests are listed in ``FOUND`` (fixed ones have their
own regression test in test_machinery.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from adev_stats import check, check_all, sample_estimates
from ppl.compiler.backend.site import Site

N = 20_000
# The exact values' own error (float32 quadrature on a grid), for estimates without noise
# (enum over every discrete choice, reparam of a linear value).
ATOL, RTOL = 3e-4, 2e-3

# ---------------------------------------------------------------- the parts


@dataclass(frozen=True)
class Value:
    """A per-element value y of the discrete b, the continuous x, the parameter t and
    the element's constant c: ppl lines assigning y, and the same in JAX."""

    text: str
    jax: object
    smooth: bool  # continuous in x (else reparam of x would be biased)


VALUES = [
    Value("y = where(b == 1, x * t, -x)",
          lambda b, x, t, c: jnp.where(b == 1, x * t, -x), True),
    Value("y = float(b * 2 - 1) * x + c",
          lambda b, x, t, c: (b * 2 - 1) * x + c, True),
    Value("if x > c { y = x * t } else { y = float(b) - x }",
          lambda b, x, t, c: jnp.where(x > c, x * t, b - x), False),
    Value("if b == 1 { y = x * x } else { y = t * x }",
          lambda b, x, t, c: jnp.where(b == 1, x * x, t * x), True),
    Value("y = stop_gradient(t) * x + float(int(x > 0.0) + b)",
          lambda b, x, t, c: jax.lax.stop_gradient(t) * x + ((x > 0).astype(jnp.int32) + b), False),
    Value("y = x * float(b) + t * t * c",
          lambda b, x, t, c: x * b + t * t * c, True),
]

# The discrete choice: its text (with {c}) and its probabilities per value.
DISCRETE = {
    "bern": ("bernoulli(sigmoid(t + {c}))", lambda t, c: _two(jax.nn.sigmoid(t + c))),
    "bern_logits": ("bernoulli(logits=t - {c})", lambda t, c: _two(jax.nn.sigmoid(t - c))),
    "cat": ("categorical(logits=[t, {c}, 0.0])",
            lambda t, c: jax.nn.softmax(jnp.stack([t, c, 0.0 * t]))),
}

# An integer term of the discrete choices: its text given the count (int), and in JAX.
EXTRA = {
    "none": ("0.0", lambda n: 0.0 * n),
    "count": ("float({n})", lambda n: 1.0 * n),
    "square": ("float({n} * {n})", lambda n: 1.0 * n * n),
}

CONTEXTS = {"scalar": 1, "plate1": 1, "plate3": 3, "nested": 4, "loop": 3}
CONSTANTS = [0.4, -0.7, 1.1, 0.2]


def _two(p1):
    return jnp.stack([1 - p1, p1])


@dataclass(frozen=True)
class Case:
    name: str
    context: str
    discrete: str
    d_est: str
    c_est: str
    value: int
    extra: str
    mean: bool

    @property
    def size(self) -> int:
        return CONTEXTS[self.context]

    def source(self) -> str:
        d_text = DISCRETE[self.discrete][0]
        v = VALUES[self.value].text
        draws = (f"b ~ {d_text.format(c='c')} with {self.d_est}\n"
                 f"x ~ normal(mu + 0.5 * float(b), s) with {self.c_est}\n{v}")
        extra = EXTRA[self.extra][0]
        n = self.size
        consts = "[" + ", ".join(map(str, CONSTANTS[:n])) + "]"
        if self.context == "scalar":
            body = f"c = {CONSTANTS[0]}\n{draws}\nreturn y + {extra.format(n='b')}"
        elif self.context == "loop":
            red = "acc / 3.0" if self.mean else "acc"
            body = (f"cs = {consts}\nacc = 0.0\ncount = 0\nfor k in 3 {{\nc = cs[k]\n{draws}\n"
                    f"acc = acc + y\ncount = count + b\n}}\nreturn {red} + "
                    f"{extra.format(n='count')}")
        else:
            red = "mean(y)" if self.mean else "sum(y)"
            if self.context == "nested":
                plate = f"plate i in 2 {{\nplate j in 2 {{\nc = cs[2 * i + j]\n{draws}\n}}\n}}"
            else:
                plate = f"plate i in {n} {{\nc = cs[i]\n{draws}\n}}"
            body = (f"cs = {consts}\n{plate}\n"
                    f"return {red} + {extra.format(n='sum(b)')}")
        body = "\n        ".join(body.split("\n"))
        return f"""
objective {self.name}() {{
    param t: real = 0.3
    param mu: real = -0.2
    param s: real<lower=0> = 0.9
    return expect {{
        {body}
    }}
}}"""

    def exact(self, q: dict):
        """E[ℓ] in plain JAX, from the unconstrained parameters by short name."""
        # Padded to 4 elements of 3 values, so that every case runs the same shapes (eager
        # JAX compiles each operation once per shape); a padded element is 0 surely.
        t, mu, s = q["t"], q["mu"], jnp.exp(q["s"])
        n = self.size
        cs = jnp.asarray(CONSTANTS[:n] + [0.0] * (4 - n), jnp.float32)
        probs = jnp.stack([DISCRETE[self.discrete][1](t, c) for c in cs[:n]])
        probs = jnp.pad(probs, ((0, 4 - n), (0, 3 - probs.shape[1])))
        probs = probs.at[n:, 0].set(1.0)  # [4, 3]
        mask = (jnp.arange(4) < n)[:, None]
        h = VALUES[self.value].jax
        # T[i, v] = E_x[h(v, x, t, c_i)] for x ~ N(mu + v/2, s), on a fixed grid.
        v = jnp.arange(3)[None, :, None]
        m = mu + 0.5 * v
        w = jnp.exp(-0.5 * ((GRID - m) / s) ** 2) / (s * jnp.sqrt(2 * jnp.pi)) * (GRID[1] - GRID[0])
        T = jnp.sum(w * h(v, GRID, t, cs[:, None, None]), -1)  # [4, 3]
        per_element = jnp.sum(jnp.where(mask, probs * T, 0.0)) / (n if self.mean else 1)
        p = jnp.prod(probs[np.arange(4)[None, :], JOINT], -1)
        return per_element + jnp.sum(p * EXTRA[self.extra][1](JOINT.sum(-1)))


GRID = jnp.linspace(-12.0, 12.0, 24_001)
JOINT = np.array(list(itertools.product(range(3), repeat=4)))  # [81, 4]: every joint value


def build_cases() -> list[Case]:
    """A grid: every context with every pair of estimators it allows, the other parts
    cycled so that each appears in several contexts."""
    cases = []
    for context in CONTEXTS:
        d_ests = ["reinforce"] if context == "loop" else ["reinforce", "enum", "mvd"]
        c_ests = ["reparam", "reinforce"] + ([] if context == "loop" else ["mvd"])
        for d_est, c_est in itertools.product(d_ests, c_ests):
            i = len(cases)
            value = i % len(VALUES)
            if c_est == "reparam" and not VALUES[value].smooth:
                value = (value + 1) % len(VALUES)
            cases.append(Case(f"c{i}_{context}_{d_est}_{c_est}", context,
                              list(DISCRETE)[i % 3], d_est, c_est, value,
                              list(EXTRA)[(i // 2) % 3], bool(i % 2)))
    return cases


CASES = build_cases()

# Defects the generated tests found, by case name -> reason (strict xfail).
FOUND: dict[str, str] = {}


def source() -> str:
    parts = [c.source() for c in CASES]
    parts.append("objective all() {\n    return " + " + ".join(f"{c.name}()" for c in CASES)
                 + "\n}")
    return "\n".join(parts)


def short(params: dict, case: Case) -> dict:
    prefix = case.name + "."
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


class Runs:
    """The summed objective's estimates with the fast paths on and off, on the same keys."""

    def __init__(self):
        self.cache = {}
        self.exact_cache = {}

    def exact(self, case: Case, params: dict):
        """(E[ℓ], ∂E[ℓ]) of a case at its parameters (the same in both runs)."""
        if case.name not in self.exact_cache:
            mine = {k: jnp.asarray(v) for k, v in params.items() if k.startswith(case.name + ".")}
            value, grad = jax.value_and_grad(lambda p: case.exact(short(p, case)))(mine)
            self.exact_cache[case.name] = float(value), {k: np.asarray(g) for k, g in grad.items()}
        return self.exact_cache[case.name]

    def __call__(self, fast: bool):
        if fast not in self.cache:
            Site.use_separability = fast
            try:
                obj = ppl.compile(source()).all()  # a module of its own: its own programs
                params = obj.init(jax.random.PRNGKey(0))
                self.cache[fast] = (params, *sample_estimates(obj, params, N, seed=11))
            finally:
                Site.use_separability = True
        return self.cache[fast]


@pytest.fixture(scope="module")
def runs():
    return Runs()


def test_the_grid_covers_every_part():
    assert {c.context for c in CASES} == set(CONTEXTS)
    assert {c.d_est for c in CASES} == {"reinforce", "enum", "mvd"}
    assert {c.c_est for c in CASES} == {"reparam", "reinforce", "mvd"}
    assert {c.value for c in CASES} == set(range(len(VALUES)))
    assert {c.discrete for c in CASES} == set(DISCRETE)
    assert {c.extra for c in CASES} == set(EXTRA) and {c.mean for c in CASES} == {True, False}


def _marks(case: Case):
    return [pytest.mark.xfail(strict=True, reason=FOUND[case.name])] if case.name in FOUND else []


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=_marks(c)) for c in CASES])
def test_gradient_is_unbiased(runs, case, fast):
    params, _, grads = runs(fast)
    _, exact = runs.exact(case, params)
    verdict = check_all({k: grads[k] for k in exact}, exact, atol=ATOL, rtol=RTOL)
    assert verdict, f"{case.name}:\n{case.source()}\n{verdict}"


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_value_is_unbiased(runs, fast):
    params, values, _ = runs(fast)
    total = sum(runs.exact(case, params)[0] for case in CASES)
    assert check(values, total, atol=len(CASES) * ATOL, rtol=RTOL, name="value of all")


def _same_estimator(case: Case) -> bool:
    """Whether the fast path evaluates the same estimator as the general one, key by key
    (enum of a separable block is exact and Rao-Blackwellised reinforce drops terms of
    mean zero: those agree in mean only)."""
    if case.context in ("scalar", "loop"):
        return True
    return case.d_est not in ("enum", "reinforce") and case.c_est != "reinforce"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if _same_estimator(c)])
def test_the_fast_path_is_the_general_evaluation(runs, case):
    (_, _, fast), (_, _, general) = runs(True), runs(False)
    for path in (k for k in fast if k.startswith(case.name + ".")):
        scale = float(np.max(np.abs(general[path]))) + 1.0
        np.testing.assert_allclose(fast[path], general[path], rtol=1e-4, atol=1e-4 * scale,
                                   err_msg=path)
