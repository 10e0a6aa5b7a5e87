"""ppl.jit: every program ppl compiles goes through one ``jit``, whose compile options
``PPL_FAST_COMPILE`` sets; the fast compile computes the same values, at the top level
and inside another program (where the outer program's options apply)."""

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from ppl.jit import FAST_COMPILE, compile_options, jit

SOURCE = """
gen model() { x ~ normal(0.0, 1.0) ; y ~ normal(x, 0.5) }
gen family() { param m: real = 0.3 ; param s: real<lower=0> = 0.7 ; x ~ normal(m, s) }
"""


def test_the_setting_picks_the_options(monkeypatch):
    monkeypatch.setenv("PPL_FAST_COMPILE", "1")
    assert compile_options() == FAST_COMPILE
    monkeypatch.setenv("PPL_FAST_COMPILE", "0")
    assert compile_options() == {}


def test_every_program_of_an_objective_is_jitted_with_the_options(monkeypatch):
    seen = []
    real = jax.jit

    def spy(f, **kwargs):
        seen.append(kwargs.get("compiler_options"))
        return real(f, **kwargs)

    monkeypatch.setenv("PPL_FAST_COMPILE", "1")
    monkeypatch.setattr("ppl.jit.jax.jit", spy)
    m = ppl.compile(SOURCE)
    obj = ppl.stdlib.elbo(m.model() | {"y": 1.2}, m.family())
    obj.compiled_value_and_grad()
    # init, init_folded, value and value_and_grad: a default and a fast jit each
    assert seen.count(FAST_COMPILE) == 4 and seen.count(None) == 4


def test_fast_and_default_compiles_compute_the_same_step(monkeypatch):
    steps = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("PPL_FAST_COMPILE", setting)
        m = ppl.compile(SOURCE)  # a module of its own: its programs are jitted now
        obj = ppl.stdlib.elbo(m.model() | {"y": 1.2}, m.family())
        params = obj.init(jax.random.PRNGKey(0))
        step = obj.compiled_value_and_grad()
        key = jax.random.PRNGKey(3)
        top = step(params, key)
        nested = jax.jit(lambda p, k: step(p, k))(params, key)  # inside another program
        steps[setting] = (top, nested)
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(steps)]
    half = len(leaves) // 2
    for a, b in zip(leaves[:half], leaves[half:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_nested_call_is_compiled_by_the_outer_program(monkeypatch):
    monkeypatch.setenv("PPL_FAST_COMPILE", "1")
    f = jit(lambda x: jnp.sin(x) * 2.0)
    x = jnp.linspace(0.0, 1.0, 5)
    np.testing.assert_allclose(jax.jit(lambda x: f(x) + 1.0)(x), np.sin(np.asarray(x)) * 2 + 1,
                               rtol=1e-6)
    np.testing.assert_allclose(f(x), np.sin(np.asarray(x)) * 2, rtol=1e-6)
    # inside another program that passes it only a constant (no tracer among its arguments)
    np.testing.assert_allclose(jax.jit(lambda: f(np.float32(0.5)))(), np.sin(0.5) * 2, rtol=1e-6)
