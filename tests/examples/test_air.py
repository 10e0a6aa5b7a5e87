"""Attend-Infer-Repeat (examples/air): the script runs, and its estimators agree in distribution.

On a tiny AIR (two 8x8 images, T = 2 steps, 4x4 windows, small networks) at the
parameters of its initialisation, the means of many vectorised estimates of the
ELBO and of its gradient with respect to the family's presence and location
biases under reinforce, mvd and the hybrid agree with enum's (exact over each
image's presence paths: one expectation per image), iwelbo's under reinforce
and mvd agree with each other, and a gradient that drops the score term of the
presence choices (a negative control) disagrees with enum's.

Each estimator is a program of its own, and AIR's take 20-60 s each to trace and
compile on two cores: the hybrid's and iwelbo's checks (three more programs) run
when PPL_SLOW_TESTS=1 is set.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl

HERE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "air")
sys.path.insert(0, HERE)
import air  # noqa: E402

SIZES = dict(T=2, W=4, D=2, H=8, L=8)
N = 2000  # estimates per estimator
Z = 4.0  # standard errors
FAST = {"xla_backend_optimization_level": 0}  # compiles faster, the same program
CHECKED = ("air_family.step.presence.b", "air_family.place.o.b")

# The gradient without the presence choices' score term: z is drawn from detach(q),
# so only log q's own derivative is left, whose expectation is zero.
NO_SCORE = """
objective elbo_without_score(p: gen, q: gen) {
    return expect {
        (z, unused) = sim(detach(q))
        return density(p, z) - density(q, z)
    }
}

objective air_elbo_without_score(images: real[B, C, C], T: int, W: int, D: int, H: int, L: int) {
    plate i in B {
        v = elbo_without_score(air_model(T, C, W, D, H) | {x: images[i]},
                               air_family(images[i], T, W, D, H, L, 0))
    }
    return sum(v)
}
"""


@pytest.fixture(scope="module")
def setup():
    with open(os.path.join(HERE, "air.ppl")) as f:
        module = ppl.compile(f.read() + NO_SCORE)
    image = jnp.asarray(np.random.default_rng(0).random((2, 8, 8)), jnp.float32)
    params = air.objective(module, "reinforce", image, **SIZES).init(jax.random.PRNGKey(0))
    return module, image, params


ALL = os.environ.get("PPL_SLOW_TESTS") == "1"  # three more AIR programs: minutes on two cores
all_estimators = pytest.mark.slow


def estimates(obj, params, seed=1):
    """N independent (value, gradient) estimates of ``obj``, in one vectorised program."""
    step = obj.compiled_value_and_grad()
    arrays = obj.compiled()[1].arrays
    keys = jax.random.split(jax.random.PRNGKey(seed), N)
    run = jax.jit(jax.vmap(lambda k: step(params, k, arrays))).lower(keys).compile(FAST)
    values, grads = run(keys)
    return np.asarray(values, np.float64), {p: np.asarray(grads[p], np.float64).reshape(N, -1)
                                            for p in CHECKED}


def differ(a, b):
    """|mean(a) − mean(b)| in combined standard errors, elementwise."""
    a, b = np.asarray(a).reshape(N, -1), np.asarray(b).reshape(N, -1)
    se = np.sqrt(a.var(0) / N + b.var(0) / N) + 1e-9
    return np.abs(a.mean(0) - b.mean(0)) / se


def test_the_example_runs_quick(capsys):
    results = air.main(["--quick", "--only", "reinforce"])
    out = capsys.readouterr().out
    assert "count acc" in out and results[0]["epochs"] >= 1
    assert np.isfinite(results[0]["history"][-1][1])


def test_estimators_agree_with_enumeration(setup):
    module, image, params = setup
    ref_values, ref_grads = estimates(air.objective(module, "enum", image, **SIZES), params)
    for name in ("reinforce", "mvd", "hybrid") if ALL else ("reinforce", "mvd"):
        values, grads = estimates(air.objective(module, name, image, **SIZES), params, seed=2)
        assert differ(values, ref_values).max() < Z, name
        for p in CHECKED:
            assert differ(grads[p], ref_grads[p]).max() < Z, (name, p)
    # The negative control: the same values, but the presence bias's gradient is wrong.
    control = module.air_elbo_without_score(image, *(SIZES[k] for k in "TWDHL"))
    values, grads = estimates(control.with_estimators({"z_pres": "reinforce"}), params, seed=3)
    assert differ(values, ref_values).max() < Z
    assert differ(grads[CHECKED[0]], ref_grads[CHECKED[0]]).max() > 2 * Z


@all_estimators
def test_iwelbo_under_reinforce_and_mvd_agree(setup):
    module, image, params = setup
    a_values, a_grads = estimates(air.objective(module, "iwelbo_reinforce", image, **SIZES), params)
    b_values, b_grads = estimates(air.objective(module, "iwelbo_mvd", image, **SIZES), params, seed=2)
    assert differ(a_values, b_values).max() < Z
    for p in CHECKED:
        assert differ(a_grads[p], b_grads[p]).max() < Z, p
