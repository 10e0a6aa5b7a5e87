"""Networks in the language: parameter shapes from arguments, parameters scoped by
call address, explicit sharing, and the standard library's layers (stdlib/nn.ppl).

Forward passes are checked against numpy at random parameter values (a
deterministic function of the parameters, not a sampled value); the fit
reaches the exact ELBO of a conjugate model (conjugate.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from adev_stats import sample_estimates
from conjugate import assert_exact_elbo, fit_and_estimate, program

LAYERS = ppl.compile("""
gen layer(x: real[D], H: int) {
    param W: real[D, H] = glorot()
    param b: real[H] = zeros()
    return tanh(x @ W + b)
}

gen net(x: real[D]) {
    h1 ~ layer(x, 4)
    h2 ~ layer(h1, 4)
    h3 ~ layer(h2, 4) shares h2
    y ~ normal(sum(h3), 1.0)
    return h3
}

gen recurrent(x: real[D], T: int) {
    h = x
    for t in T {
        h ~ layer(h, 3)
    }
    return h
}

gen p0() { z ~ normal(0.0, 1.0) }

gen q() {
    loc ~ dense(ones(2), 1)
    z ~ normal(loc[0], 1.0)
}

objective detached() {
    return expect {
        (t, lp) = sim(p0())
        return density(detach(q()), t)
    }
}

objective dreg_q() { return dreg(p0(), q(), 4) }

objective iwelbo_q() { return iwelbo(p0(), q(), 4) }

objective attached() {
    return expect {
        (t, lp) = sim(p0())
        return density(q(), t)
    }
}
""")

RNG = np.random.default_rng(0)
X3 = np.asarray([0.3, -1.2, 0.8], np.float32)


def random_like(params: dict) -> dict:
    return {k: RNG.normal(size=np.shape(v)).astype(np.float32) for k, v in params.items()}


def layer(x, p, prefix):
    return np.tanh(x @ p[prefix + ".W"] + p[prefix + ".b"])


def shapes(params: dict) -> dict:
    return {k: tuple(np.shape(v)) for k, v in params.items()}


def test_parameter_shapes_come_from_arguments():
    """One declaration, two argument sizes: called from Python it keeps the name it
    always had (layer.W); its shape is the argument's size and the int argument."""
    assert shapes(LAYERS.layer(X3, 5).init(jax.random.PRNGKey(0))) == {
        "layer.W": (3, 5), "layer.b": (5,)}
    g = LAYERS.net(X3)
    assert shapes(g.init(jax.random.PRNGKey(0))) == {
        "net.h1.W": (3, 4), "net.h1.b": (4,), "net.h2.W": (4, 4), "net.h2.b": (4,)}


def test_two_calls_are_two_layers_and_shares_reuses_one():
    """h1 and h2 have their own parameters; h3 'shares h2', so it has none of its own
    and the forward pass applies h2's parameters twice."""
    g = LAYERS.net(X3)
    p = random_like(g.init(jax.random.PRNGKey(0)))
    trace, _ = g.simulate(jax.random.PRNGKey(1), p)
    expected = layer(layer(layer(X3, p, "net.h1"), p, "net.h2"), p, "net.h2")
    np.testing.assert_allclose(np.asarray(trace.retval), expected, rtol=1e-5, atol=1e-6)


def test_a_call_in_a_loop_is_one_layer():
    """Every step of a for loop calls the layer at the same address: one parameter set."""
    g = LAYERS.recurrent(np.asarray([0.5, -0.5, 1.0], np.float32), 4)
    p = random_like(g.init(jax.random.PRNGKey(0)))
    assert shapes(p) == {"recurrent.h.W": (3, 3), "recurrent.h.b": (3,)}
    h = np.asarray([0.5, -0.5, 1.0], np.float32)
    for _ in range(4):
        h = layer(h, p, "recurrent.h")
    trace, _ = g.simulate(jax.random.PRNGKey(1), p)
    np.testing.assert_allclose(np.asarray(trace.retval), h, rtol=1e-5, atol=1e-6)


def test_standard_layers_match_numpy():
    """dense, mlp and lstm_cell of stdlib/nn.ppl on batched inputs, at random parameters."""
    m = ppl.compile("""
    gen nets(x: real[N, 3], T: int) {
        d ~ dense(x, 4)
        y ~ mlp(x, 6, 3, 2)
        h = zeros(N, 5)
        c = zeros(N, 5)
        for t in T {
            s ~ lstm_cell(d, h, c)
            h, c = s
        }
        return (d, y, h, c)
    }
    """)
    x = RNG.normal(size=(7, 3)).astype(np.float32)
    g = m.nets(x, 3)
    init = g.init(jax.random.PRNGKey(0))
    assert shapes(init) == {
        "nets.d.W": (3, 4), "nets.d.b": (4,),
        "nets.y.input.W": (3, 6), "nets.y.input.b": (6,), "nets.y.W": (2, 6, 6),
        "nets.y.b": (2, 6), "nets.y.output.W": (6, 2), "nets.y.output.b": (2,),
        **{f"nets.s.{gate}.{w}": shape for gate in "ifog"
           for w, shape in (("W", (9, 5)), ("b", (5,)))}}
    np.testing.assert_array_equal(init["nets.d.b"], 0.0)
    p = random_like(init)
    (d, y, h, c) = (np.asarray(v) for v in g.simulate(jax.random.PRNGKey(1), p)[0].retval)

    def dense(x, prefix):
        return x @ p[prefix + ".W"] + p[prefix + ".b"]

    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    hidden = relu(dense(x, "nets.y.input"))
    for l in range(2):
        hidden = relu(hidden @ p["nets.y.W"][l] + p["nets.y.b"][l])
    want_h, want_c = np.zeros((7, 5)), np.zeros((7, 5))
    want_d = dense(x, "nets.d")
    for _ in range(3):
        xh = np.concatenate([want_d, want_h], -1)
        gate = {k: dense(xh, f"nets.s.{k}") for k in "ifog"}
        want_c = sigmoid(gate["f"] + 1.0) * want_c + sigmoid(gate["i"]) * np.tanh(gate["g"])
        want_h = sigmoid(gate["o"]) * np.tanh(want_c)
    for got, want in ((d, want_d), (y, dense(hidden, "nets.y.output")), (h, want_h),
                      (c, want_c)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_mlp_of_depth_one_has_an_empty_hidden_loop():
    """mlp(x, width, 1, out) is one relu layer and the output layer: its loop over the
    depth - 1 = 0 hidden layers runs no step (it once traced its body, and indexing the
    empty [0, width, width] weights was a JAX IndexError), alone and inside a plate."""
    m = ppl.compile("""
    gen shallow(x: real[N, 3]) {
        y ~ mlp(x, 6, 1, 2)
        plate i in N {
            r ~ mlp(x[i], 6, 1, 2) shares y
        }
        return (y, r)
    }
    """)
    x = RNG.normal(size=(7, 3)).astype(np.float32)
    g = m.shallow(x)
    p = random_like(g.init(jax.random.PRNGKey(0)))
    assert p["shallow.y.W"].shape == (0, 6, 6)
    y, r = (np.asarray(v) for v in g.simulate(jax.random.PRNGKey(1), p)[0].retval)
    hidden = np.maximum(x @ p["shallow.y.input.W"] + p["shallow.y.input.b"], 0.0)
    want = hidden @ p["shallow.y.output.W"] + p["shallow.y.output.b"]
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r, want, rtol=1e-4, atol=1e-5)


def test_detach_holds_nested_parameters():
    """density(detach(q), t) of a trace q did not draw: no gradient reaches the dense
    layer nested in q; without detach it does (the check can fail)."""
    params = LAYERS.detached().init(jax.random.PRNGKey(0))
    assert set(params) == {"q.loc.W", "q.loc.b"}
    _, held = LAYERS.detached().value_and_grad(jax.random.PRNGKey(1), params)
    _, free = LAYERS.attached().value_and_grad(jax.random.PRNGKey(1), params)
    assert all(float(jnp.abs(v).max()) == 0.0 for v in held.values())
    assert float(jnp.abs(free["q.loc.b"]).max()) > 0.0


GRADIENTS = ppl.compile("""
gen f(x: real[N]) {
    plate i in N {
        h ~ dense(reshape(x[i], 1), 1)             # a layer called in a plate
    }
    s = sum(h)
    for t in 3 {
        s ~ dense(reshape(s, 1), 1)                # and in a loop
        s = s[0]
    }
    z ~ normal(s, 1.0)
}

objective mean_z(x: real[N]) {
    return expect {
        (t, lq) = sim(f(x))
        return t.z
    }
}
""")


def test_dreg_sees_nested_parameters_through_rsim_and_detach():
    """dreg (rsim(q) and detach(q)) and iwelbo estimate the same gradient of the
    nested layer's parameters: their means agree within standard errors."""
    params = random_like(LAYERS.iwelbo_q().init(jax.random.PRNGKey(0)))
    _, dreg = sample_estimates(LAYERS.dreg_q(), params, n=4000, seed=1)
    _, iwae = sample_estimates(LAYERS.iwelbo_q(), params, n=4000, seed=2)
    assert set(dreg) == set(iwae) == {"q.loc.W", "q.loc.b"}
    for k in dreg:
        se = np.sqrt(dreg[k].var(0) / 4000 + iwae[k].var(0) / 4000)
        gap = np.abs(dreg[k].mean(0) - iwae[k].mean(0))
        assert np.all(gap < 5 * se + 1e-6), (k, gap, se)
        assert np.all(np.abs(iwae[k].mean(0)) > 5 * se)   # a gradient that is not zero


def test_gradients_reach_layers_called_in_plates_and_loops():
    """E[z] is the network's output; with z reparameterised each estimate's gradient
    is exactly the output's gradient, which jax.grad of the same forward pass gives."""
    x = np.asarray([0.5, -1.0, 2.0], np.float32)
    objective = GRADIENTS.mean_z(x)
    params = random_like(objective.init(jax.random.PRNGKey(0)))

    def forward(p):
        s = jnp.sum(x[:, None] @ p["f.h.W"] + p["f.h.b"])
        for _ in range(3):
            s = (jnp.reshape(s, (1,)) @ p["f.s.W"] + p["f.s.b"])[0]
        return s

    _, grads = objective.value_and_grad(jax.random.PRNGKey(1), params)
    want = jax.grad(forward)({k: jnp.asarray(v) for k, v in params.items()})
    assert set(grads) == set(want) == {"f.h.W", "f.h.b", "f.s.W", "f.s.b"}
    for k in want:
        np.testing.assert_allclose(np.asarray(grads[k]), np.asarray(want[k]), rtol=1e-4, atol=1e-5)


def test_a_dense_family_reaches_the_exact_elbo(tmp_path):
    """An amortised family written with the language's dense layer, fitted by ELBO,
    reaches log p(x); its fit result saves and loads with the nested names."""
    module = program("out ~ dense(reshape(x, N, 1), 2)")
    objective, result, values = fit_and_estimate(module)
    assert sorted(result.params) == ["family.out.W", "family.out.b"]
    assert_exact_elbo(values)
    result.save(str(tmp_path / "fit.pkl"))
    loaded = ppl.FitResult.load(str(tmp_path / "fit.pkl"), objective=objective)
    assert sorted(loaded.constrained_params) == ["family.out.W", "family.out.b"]
    np.testing.assert_array_equal(loaded.params["family.out.W"], result.params["family.out.W"])
