"""Exact summation (``marginal(g, keep=[…], exact=true)``) against hand-written references.

Each model's exact marginal log density, and its gradient in the model's
parameters, must equal a reference written directly in JAX: logsumexp over a
mixture's components, the forward algorithm for an HMM, and brute-force
enumeration of every joint assignment where it is small. The values are
deterministic (nothing is sampled), so they are compared to float32 rounding.

Densities are read through an objective ``expect { (t, _) = sim(nothing());
return density(marginal(...) | {obs}, t) }``: ``nothing()`` draws no choice,
so ``t`` is the empty trace and every kept value is an observation.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm

import ppl
from ppl.compiler.ir import walk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adev"))
from adev_stats import assert_unbiased  # noqa: E402  (the house statistical check)

SOURCE = '''
gen nothing() {}

gen mix(N: int) {
    param logits: real[3] = [0.2, -0.1, 0.4]
    param scale: real<lower=0> = 1.3
    mu ~ normal([-1.0, 0.0, 1.0], 1.0)
    plate i in N {
        z ~ categorical(logits=logits)
        x ~ normal(mu[z], scale)
    }
}

objective mix_density(mu: real[3], x: real[N]) {
    return expect {
        (t, _) = sim(nothing())
        return density(marginal(mix(N), keep=["mu", "x"], exact=true) | {mu: mu, x: x}, t)
    }
}

# The component reads a per-point kept value (u): it is summed inside each element.
gen mix_shift(N: int) {
    param logits: real[3] = [0.2, -0.1, 0.4]
    plate i in N {
        u ~ normal(0.0, 1.0)
        z ~ categorical(logits=logits)
        x ~ normal([-1.0, 0.5, 2.0][z] + u, 0.7)
    }
}

objective mix_shift_density(u: real[N], x: real[N]) {
    return expect {
        (t, _) = sim(nothing())
        return density(marginal(mix_shift(N), keep=["u", "x"], exact=true) | {u: u, x: x}, t)
    }
}

gen hmm(T: int, K: int) {
    param A: real[K, K] = zeros()
    param mu: real[K] = zeros()
    z = 0
    for t in T {
        z ~ categorical(logits=A[z])
        y ~ normal(mu[z], 1.0)
    }
}

objective hmm_density(y: real[T], K: int) {
    return expect {
        (t, _) = sim(nothing())
        return density(marginal(hmm(T, K), keep=["y"], exact=true) | {y: y}, t)
    }
}

# The initial state is itself a summed choice, and each step has a second choice u,
# summed with the state (the emission reads both).
gen hmm2(T: int) {
    param pi: real[3] = zeros()
    param A: real[3, 3] = zeros()
    param mu: real[3] = zeros()
    s ~ categorical(logits=pi)
    z = s
    for t in T {
        z ~ categorical(logits=A[z])
        u ~ bernoulli(0.3)
        y ~ normal(mu[z] + 2.0 * u, 1.0)
    }
}

objective hmm2_density(y: real[T]) {
    return expect {
        (t, _) = sim(nothing())
        return density(marginal(hmm2(T), keep=["y"], exact=true) | {y: y}, t)
    }
}

# A carried real h beside the state (its emission reads it: it stays in the loop), a
# non-zero initial state, and a second loop whose choice u is summed per step.
gen hmm3(T: int) {
    param A: real[3, 3] = zeros()
    param mu: real[3] = zeros()
    h = 0.0
    z = 1
    for t in T {
        h = h + 1.0
        z ~ categorical(logits=A[z])
        y ~ normal(mu[z] + 0.1 * h, 1.0)
    }
    for t in T {
        u ~ bernoulli(0.3)
        w ~ normal(mu[0] + 2.0 * u, 1.0)
    }
}

objective hmm3_density(y: real[T], w: real[T]) {
    return expect {
        (t, _) = sim(nothing())
        return density(marginal(hmm3(T), keep=["y", "w"], exact=true) | {y: y, w: w}, t)
    }
}

# A batch of sequences (a loop in a plate) with a vector emission (a plate in the loop).
gen hmms(S: int, T: int, D: int) {
    param A: real[3, 3] = zeros()
    param mu: real[3, D] = zeros()
    plate s in S {
        z = 0
        for t in T {
            z ~ categorical(logits=A[z])
            plate d in D {
                y ~ normal(mu[z, d], 1.0)
            }
        }
    }
}

objective hmms_density(y: real[S, T, D]) {
    return expect {
        (t, _) = sim(nothing())
        return density(marginal(hmms(S, T, D), keep=["y"], exact=true) | {y: y}, t)
    }
}

# Nested plates: c per row, z per cell; a and b summed jointly (x reads both), d alone.
gen nested(I: int, J: int) {
    param q: real = 0.2
    a ~ bernoulli(0.3)
    b ~ categorical(probs=[0.2, 0.5, 0.3])
    d ~ bernoulli(0.6)
    x ~ normal(a + 2.0 * b, 1.0)
    w ~ normal(3.0 * d, 1.0)
    plate i in I {
        c ~ bernoulli(logits=q)
        plate j in J {
            z ~ bernoulli(logits=q)
            v ~ normal(c + 2.0 * z + a, 1.0)
        }
    }
}

objective nested_density(x: real, w: real, v: real[I, J]) {
    return expect {
        (t, _) = sim(nothing())
        return density(marginal(nested(I, J), keep=["x", "w", "v"], exact=true)
                       | {x: x, w: w, v: v}, t)
    }
}

# A mixture as a variational family, its component u summed out: q(x) = Σ_u q(u) q(x | u).
gen target() {
    x ~ normal(1.0, 1.5)
}

gen family() {
    param w: real = 0.3
    param m: real[2] = [-1.0, 2.0]
    param s: real<lower=0> = 0.8
    u ~ bernoulli(logits=w)
    x ~ normal(m[u], s)
}

objective family_elbo() {
    return elbo(target(), marginal(family(), keep=["x"], exact=true))
}

# sim returns the exact marginal log density of what it draws: lq - density = 0.
objective sim_is_exact(N: int) {
    return expect {
        (t, lq) = sim(marginal(mix(N), keep=["mu", "x"], exact=true))
        return lq - density(marginal(mix(N), keep=["mu", "x"], exact=true), t)
    }
}
'''

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def module():
    return ppl.compile(SOURCE)


def value_and_grad(obj, params):
    return obj.value_and_grad(KEY, params)


def assert_close(got, want, rtol=2e-5, atol=2e-5):
    got, want = jax.tree_util.tree_map(np.asarray, (got, want))
    jax.tree_util.tree_map(lambda g, w: np.testing.assert_allclose(g, w, rtol=rtol, atol=atol),
                           got, want)


def random_params(obj, seed):
    """The objective's parameters, each replaced by a random value of its shape."""
    params = obj.init(KEY)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(params))
    return {k: jax.random.normal(kk, jnp.shape(v)) for kk, (k, v) in zip(keys, sorted(params.items()))}


# ---------------------------------------------------------------- mixture


def mixture_reference(params, mu, x):
    log_w = jax.nn.log_softmax(params["mix.logits"])
    scale = jnp.exp(params["mix.scale"])  # the unconstrained scale is its log
    prior = norm.logpdf(mu, jnp.array([-1.0, 0.0, 1.0]), 1.0).sum()
    per_point = logsumexp(log_w + norm.logpdf(x[:, None], mu[None, :], scale), axis=1)
    return prior + per_point.sum()


def test_mixture_density_and_gradient_equal_logsumexp(module):
    mu = jnp.array([-2.0, 0.5, 3.0])
    x = jax.random.normal(jax.random.PRNGKey(1), (40,)) * 2.0
    obj = module.mix_density(mu, x)
    params = random_params(obj, 1)
    value, grads = value_and_grad(obj, params)
    want, want_grads = jax.jit(jax.value_and_grad(mixture_reference))(params, mu, x)
    assert_close(value, want)
    assert_close(grads, want_grads, rtol=1e-4, atol=1e-4)


def _plates(program):
    return [e for e in walk(program.functions[program.entry].body) if e.op == "plate"]


def test_a_mixture_table_has_its_components_outermost(module):
    """The per-point sum over z is one K x N table, a plate over the 3 components holding
    a plate over the 40 points (NumPyro's layout: the logsumexp runs over K rows of N
    values), reduced by logsumexp along axis 0; no plate over the components per point."""
    obj = module.mix_density(jnp.zeros(3), jnp.zeros(40))
    program = obj.compiled()[0].program
    tables = [e for e in _plates(program) if e.attrs["size"] == 3
              and any(x.op == "plate" and x.attrs["size"] == 40 for x in e.regions[0].eqns)]
    assert len(tables) == 1 and tables[0].outs[0].type.shape == (3, 40)
    assert not [x for e in _plates(program) if e.attrs["size"] == 40
                for x in walk(e.regions[0]) if x.op == "plate" and x.attrs["size"] == 3]
    reads = [e for e in walk(program.functions[program.entry].body)
             if e.op == "fn" and e.args and e.args[0] is tables[0].outs[0]]
    assert [(e.attrs["name"], e.attrs["axis"]) for e in reads] == [("logsumexp", 0)]


def test_a_component_reading_a_per_point_value_is_summed_per_point(module):
    u = jax.random.normal(jax.random.PRNGKey(3), (30,))
    x = jax.random.normal(jax.random.PRNGKey(4), (30,)) * 2.0
    obj = module.mix_shift_density(u, x)
    params = random_params(obj, 3)

    def reference(p):
        log_w = jax.nn.log_softmax(p["mix_shift.logits"])
        means = jnp.array([-1.0, 0.5, 2.0])
        per_point = logsumexp(log_w + norm.logpdf(x[:, None], means + u[:, None], 0.7), axis=1)
        return norm.logpdf(u, 0.0, 1.0).sum() + per_point.sum()

    value, grads = value_and_grad(obj, params)
    want, want_grads = jax.jit(jax.value_and_grad(reference))(params)
    assert_close(value, want)
    assert_close(grads, want_grads, rtol=1e-4, atol=1e-4)


def test_mixture_gradient_matches_finite_differences(module):
    mu = jnp.array([-2.0, 0.5, 3.0])
    x = jnp.linspace(-3.0, 4.0, 40)  # the shape above: the same compiled program
    obj = module.mix_density(mu, x)
    params = {k: jnp.asarray(v, jnp.float32) for k, v in random_params(obj, 2).items()}
    _, grads = value_and_grad(obj, params)
    f = lambda p: value_and_grad(obj, p)[0]  # noqa: E731
    eps = 1e-2
    for path, i in [("mix.logits", 0), ("mix.logits", 2), ("mix.scale", ())]:
        bump = jnp.zeros_like(params[path]).at[i].set(eps)
        up = f({**params, path: params[path] + bump})
        down = f({**params, path: params[path] - bump})
        fd = (up - down) / (2 * eps)
        np.testing.assert_allclose(np.asarray(grads[path])[i], fd, rtol=2e-2, atol=2e-2)


def test_sim_returns_the_exact_marginal_of_its_draws(module):
    obj = module.sim_is_exact(7)
    params = obj.init(KEY)
    values = [obj.value_and_grad(k, params)[0] for k in jax.random.split(KEY, 8)]
    np.testing.assert_allclose(np.asarray(values), 0.0, atol=1e-4)


def family_elbo_by_quadrature(params):
    """∫ q(x) (log p(x) − log q(x)) dx on a fine grid, q the two-component mixture."""
    xs = jnp.linspace(-15.0, 15.0, 20001)
    w, m, s = (jax.nn.sigmoid(params["family.w"]), params["family.m"],
               jnp.exp(params["family.s"]))
    log_q = jnp.logaddexp(jnp.log1p(-w) + norm.logpdf(xs, m[0], s),
                          jnp.log(w) + norm.logpdf(xs, m[1], s))
    return jnp.trapezoid(jnp.exp(log_q) * (norm.logpdf(xs, 1.0, 1.5) - log_q), xs)


def test_elbo_with_an_exactly_marginalised_family_is_unbiased(module):
    """sim of the family draws (u, x) and scores x by log Σ_u q(u, x): the ELBO's value and
    gradient estimates average to the quadrature's."""
    assert_unbiased(module.family_elbo(), family_elbo_by_quadrature, n=20_000)


# ---------------------------------------------------------------- HMMs


def forward_reference(params, y, init_logits=None, u_probs=None, u_shift=2.0):
    """The forward algorithm in lax.scan: state 0 before the first step, or
    ``init_logits`` for a summed initial state; an optional bernoulli u per step
    shifting the emission by u_shift·u, summed with the state."""
    log_a = jax.nn.log_softmax(params["A"], -1)
    mu = params["mu"]
    em = norm.logpdf(y[:, None], mu[None, :], 1.0)
    if u_probs is not None:
        em = jnp.logaddexp(jnp.log1p(-u_probs) + em,
                           jnp.log(u_probs) + norm.logpdf(y[:, None], mu[None, :] + u_shift, 1.0))
    if init_logits is None:
        alpha = log_a[0] + em[0]
    else:
        alpha = logsumexp(jax.nn.log_softmax(init_logits)[:, None] + log_a, 0) + em[0]

    def step(alpha, e):
        return logsumexp(alpha[:, None] + log_a, 0) + e, None

    alpha, _ = jax.lax.scan(step, alpha, em[1:])
    return logsumexp(alpha)


def brute_force_hmm(params, y):
    """log Σ over every state path of the joint, path by path."""
    log_a = np.asarray(jax.nn.log_softmax(params["A"], -1), np.float64)
    mu = np.asarray(params["mu"], np.float64)
    k = log_a.shape[0]
    terms = []
    for path in itertools.product(range(k), repeat=len(y)):
        prev, lp = 0, 0.0
        for z, yt in zip(path, np.asarray(y, np.float64)):
            lp += log_a[prev, z] - 0.5 * (yt - mu[z]) ** 2 - 0.5 * np.log(2 * np.pi)
            prev = z
        terms.append(lp)
    return float(np.logaddexp.reduce(terms))


def _hmm_params(params):
    return {"A": params["hmm.A"], "mu": params["hmm.mu"]}


@pytest.mark.parametrize("t", [4, 2000])
def test_hmm_density_and_gradient_equal_the_forward_algorithm(module, t):
    """T = 4 against brute force too (81 paths); T = 2000 runs (T·K² work, not K^T)."""
    y = jax.random.normal(jax.random.PRNGKey(t), (t,)) * 2.0
    obj = module.hmm_density(y, 3)
    params = random_params(obj, t)
    value, grads = value_and_grad(obj, params)
    want, want_grads = jax.jit(jax.value_and_grad(
        lambda p: forward_reference(_hmm_params(p), y)))(params)
    assert_close(value, want, rtol=1e-5, atol=1e-4)
    assert_close(grads, want_grads, rtol=1e-4, atol=1e-3)
    if t <= 5:
        np.testing.assert_allclose(float(value), brute_force_hmm(_hmm_params(params), y),
                                   rtol=1e-5)


def test_the_forward_step_reads_a_log_softmax_table_laid_out_c_z(module):
    """The transition table is log_softmax(A) by rows (no categorical density per state
    pair, no gather), and the step is logsumexp(alpha[:, None] + table, 0)."""
    obj = module.hmm_density(jnp.zeros(5), 3)
    program = obj.compiled()[0].program
    eqns = list(walk(program.functions[program.entry].body))
    assert not [e for e in eqns if e.op == "logpdf" and e.attrs["dist"] == "categorical"]
    assert [e.attrs["axis"] for e in eqns if e.op == "fn"
            and e.attrs["name"] == "log_softmax"] == [-1]
    (scan,) = [e for e in eqns if e.op == "scan"]
    assert [(e.attrs["name"], e.attrs["axis"]) for e in scan.regions[0].eqns
            if e.op == "fn" and e.attrs["name"] == "logsumexp"] == [("logsumexp", 0)]


def test_summed_initial_state_and_per_step_choice(module):
    y = jax.random.normal(jax.random.PRNGKey(5), (6,)) * 2.0
    obj = module.hmm2_density(y)
    params = random_params(obj, 5)
    value, grads = value_and_grad(obj, params)

    def ref(p):
        return forward_reference({"A": p["hmm2.A"], "mu": p["hmm2.mu"]}, y,
                                 init_logits=p["hmm2.pi"], u_probs=0.3)

    want, want_grads = jax.jit(jax.value_and_grad(ref))(params)
    assert_close(value, want, rtol=1e-5, atol=1e-4)
    assert_close(grads, want_grads, rtol=1e-4, atol=1e-4)


def test_carried_real_initial_state_and_per_step_loop(module):
    y, w = (jax.random.normal(k, (5,)) * 2.0 for k in jax.random.split(jax.random.PRNGKey(8)))
    obj = module.hmm3_density(y, w)
    params = random_params(obj, 8)
    value, grads = value_and_grad(obj, params)

    def ref(p):
        log_a = jax.nn.log_softmax(p["hmm3.A"], -1)
        mu = p["hmm3.mu"]
        em = norm.logpdf(y[:, None], mu[None, :] + 0.1 * jnp.arange(1.0, 6.0)[:, None], 1.0)
        alpha = log_a[1] + em[0]  # the state before the first step is 1
        for t in range(1, 5):
            alpha = logsumexp(alpha[:, None] + log_a, 0) + em[t]
        per_step = jnp.logaddexp(jnp.log(0.7) + norm.logpdf(w, mu[0], 1.0),
                                 jnp.log(0.3) + norm.logpdf(w, mu[0] + 2.0, 1.0))
        return logsumexp(alpha) + per_step.sum()

    want, want_grads = jax.jit(jax.value_and_grad(ref))(params)
    assert_close(value, want, rtol=1e-5, atol=1e-4)
    assert_close(grads, want_grads, rtol=1e-4, atol=1e-4)


def test_sequences_in_a_plate_with_vector_emissions(module):
    y = jax.random.normal(jax.random.PRNGKey(9), (3, 5, 2)) * 2.0
    obj = module.hmms_density(y)
    params = random_params(obj, 9)
    value, grads = value_and_grad(obj, params)

    def ref(p):
        log_a = jax.nn.log_softmax(p["hmms.A"], -1)
        em = norm.logpdf(y[:, :, None, :], p["hmms.mu"], 1.0).sum(-1)  # [S, T, K]
        alpha = log_a[0] + em[:, 0]
        for t in range(1, 5):
            alpha = logsumexp(alpha[:, :, None] + log_a, 1) + em[:, t]
        return logsumexp(alpha, 1).sum()

    want, want_grads = jax.jit(jax.value_and_grad(ref))(params)
    assert_close(value, want, rtol=1e-5, atol=1e-4)
    assert_close(grads, want_grads, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- plates and joint sums


def nested_brute_force(q, x, w, v):
    """Every assignment of (a, b, d) on the axes of a table; per row, both values of c;
    per cell, both values of z."""
    lq = jnp.stack([jax.nn.log_sigmoid(-q), jax.nn.log_sigmoid(q)])  # log p(0), log p(1)
    a, b, d = (jnp.arange(n, dtype=jnp.float32) for n in (2, 3, 2))
    top = (jnp.log(jnp.array([0.7, 0.3]))[:, None, None] + jnp.log(jnp.array([0.2, 0.5, 0.3]))
           [None, :, None] + jnp.log(jnp.array([0.4, 0.6]))[None, None, :]
           + norm.logpdf(x, a[:, None, None] + 2.0 * b[None, :, None], 1.0)
           + norm.logpdf(w, 3.0 * d, 1.0)[None, None, :])  # [a, b, d]
    shift = a[:, None, None, None] + jnp.arange(2.0)[None, :, None, None]  # a + c: [a, c, 1, 1]
    cells = jnp.logaddexp(lq[0] + norm.logpdf(v, shift, 1.0),
                          lq[1] + norm.logpdf(v, shift + 2.0, 1.0)).sum(-1)  # [a, c, I]
    rows = logsumexp(lq[None, :, None] + cells, axis=1).sum(-1)  # [a]
    return logsumexp(top + rows[:, None, None])


def test_nested_plates_and_joint_sums_equal_brute_force(module):
    v = jax.random.normal(jax.random.PRNGKey(7), (3, 4)) * 2.0
    x, w = jnp.float32(2.5), jnp.float32(1.0)
    obj = module.nested_density(x, w, v)
    params = {"nested.q": jnp.float32(0.7)}
    value, grads = value_and_grad(obj, params)
    want, want_grad = jax.jit(jax.value_and_grad(lambda q: nested_brute_force(q, x, w, v)))(
        params["nested.q"])
    assert_close(value, want, rtol=1e-5, atol=1e-4)
    assert_close(grads["nested.q"], want_grad, rtol=1e-4, atol=1e-4)
