"""Minibatches follow the data by value, and only plates over the batch are scaled.

``fit(build, data=..., batch_size=B)`` traces ``build`` on each batch inside
the compiled step, so an objective built from a transformed batch
(``b["x"] * 2.0``) sees the transformed rows of every batch (defect 4: they
were matched by array identity and frozen at the first batch). A log density
that reads the batch outside a plate over it, a ``for`` loop's included,
cannot be scaled by N/B: it is a compile error (defect 5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ppl
from ppl.compiler.ir import walk
from ppl import fitting

SOURCE = """
gen line(x: real[N]) {
    w ~ normal(0.0, 1.0)
    plate i in N { y ~ normal(w * x[i], 0.5) }
}
gen line_fam() { param m: real = 0.0; param s: real<lower=0> = 0.5; w ~ normal(m, s) }
gen walk(x: real[N]) {
    w ~ normal(0.0, 1.0)
    for t in N { y ~ normal(w * x[t], 0.5) }
}
gen whole(x: real[N]) {
    w ~ normal(0.0, 1.0)
    y ~ normal(w * x, 0.5)
}
gen total(s: real) { w ~ normal(0.0, 1.0); y ~ normal(w * s, 0.5) }
"""


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200).astype(np.float32)
    y = (0.4 * x + 0.5 * rng.normal(size=200)).astype(np.float32)
    return {"x": x, "y": y}


def test_a_transformed_batch_is_resampled_with_the_batch(m, data):
    """Defect 4: the posterior mean came out −0.03 instead of the exact value."""
    build = lambda b: ppl.stdlib.elbo(m.line(b["x"] * 2.0) | {"y": b["y"]}, m.line_fam())  # noqa: E731
    steps = 1500
    r = ppl.fit(build, data=data, batch_size=20, steps=steps, progress=False,
                optimizer=optax.adam(optax.cosine_decay_schedule(0.05, steps)))
    x2 = 2.0 * data["x"].astype(np.float64)
    precision = 1 + (x2 ** 2).sum() / 0.25
    mean = (x2 * data["y"]).sum() / 0.25 / precision
    assert abs(float(r.constrained_params["line_fam.m"]) - mean) < 0.03


def test_the_transformed_inputs_are_the_minibatched_ones(m, data):
    build = lambda b: ppl.stdlib.elbo(m.line(b["x"] * 2.0) | {"y": b["y"]}, m.line_fam())  # noqa: E731
    batcher = fitting.Batcher(build, data, 20)
    assert len(batcher.minibatched) == 2  # x * 2.0 and y, both of the batch's rows


@pytest.mark.parametrize("model, line", [("walk", 9), ("whole", 13)])
def test_reading_the_batch_outside_a_plate_is_an_error(m, data, model, line):
    """Defect 5: a for loop (or a vectorised choice) over the batch was never scaled."""
    build = lambda b: ppl.stdlib.elbo(getattr(m, model)(b["x"]) | {"y": b["y"]},  # noqa: E731
                                      m.line_fam())
    with pytest.raises(ppl.CompileError, match="minibatched data") as err:
        fitting.Batcher(build, data, 20)
    assert err.value.line == line
    if model == "walk":
        assert "for loop" in str(err.value)
    # With the whole data set as the batch there is nothing to scale.
    fitting.Batcher(build, data, len(data["x"]))


def test_values_reduced_over_the_batch_are_an_error(m, data):
    build = lambda b: ppl.stdlib.elbo(m.total(b["x"].sum()) | {"y": 1.0}, m.line_fam())  # noqa: E731
    with pytest.raises(ppl.DataError, match="not a leading axis of the batch"):
        fitting.Batcher(build, data, 20)


def test_a_build_that_needs_concrete_batch_values_is_an_error(m, data):
    def build(b):
        n = int(b["x"][0] > 0) + 2  # a size read from the data: not traceable
        return ppl.stdlib.elbo(m.line(b["x"][:n]) | {"y": b["y"][:n]}, m.line_fam())

    with pytest.raises(ppl.DataError, match="traced on each batch"):
        fitting.Batcher(build, data, 20)


def test_an_objective_computed_from_the_batch_is_an_error(data):
    """Only scaled log densities may carry the batch into the objective's value."""
    m = ppl.compile("""
    objective squared(x: real[N], y: real[N]) {
        param w: real = 0.0
        return 0.0 - sum((y - w * x) * (y - w * x))
    }""")
    with pytest.raises(ppl.CompileError, match="objective's value reads minibatched data"):
        fitting.Batcher(lambda b: m.squared(b["x"], b["y"]), data, 20)


PER_DATUM = """
gen point(x: real) { z ~ normal(0.0, 1.0); y ~ normal(z, 1.0) }
gen amortised(x: real) {
    param a: real = 0.0
    param s: real<lower=0> = 1.0
    z ~ normal(a * x, s)
}
gen level(m: real) { y ~ normal(m, 1.0) }
objective iwae_per_datum(xs: real[B], K: int) {
    return expect {
        plate i in B {
            plate k in K {
                (t, lq) = sim(amortised(xs[i]))
                log_w = density(point(xs[i]) | {y: xs[i]}, t) - lq
            }
            v = logmeanexp(log_w)
        }
        return sum(v)
    }
}
objective summed(xs: real[B]) {
    param m: real = 0.3
    return expect {
        plate i in B { v = density(level(m), {y: xs[i]}) }
        return sum(v)
    }
}
objective averaged(xs: real[B]) {
    param m: real = 0.3
    return expect {
        plate i in B { v = density(level(m), {y: xs[i]}) }
        return mean(v)
    }
}
objective pooled(xs: real[B]) {
    param m: real = 0.3
    return expect {
        plate i in B { v = density(level(m), {y: xs[i]}) }
        return logsumexp(v)
    }
}
objective centred(xs: real[B]) {
    param m: real = 0.3
    return expect {
        plate i in B { v = density(level(m), {y: xs[i] - mean(xs)}) }
        return sum(v)
    }
}
objective summed_outside(xs: real[B]) {
    param m: real = 0.3
    plate i in B { v = expect { return density(level(m), {y: xs[i]}) } }
    return sum(v)
}
objective averaged_outside(xs: real[B]) {
    param m: real = 0.3
    plate i in B { v = expect { return density(level(m), {y: xs[i]}) } }
    return mean(v)
}
objective centred_outside(xs: real[B]) {
    param m: real = 0.3
    plate i in B { v = expect { return density(level(m), {y: xs[i] - mean(xs)}) } }
    return sum(v)
}
"""


@pytest.fixture(scope="module")
def per_datum():
    return ppl.compile(PER_DATUM, "per_datum.ppl")


@pytest.mark.parametrize("name, scale", [("summed", 4.0), ("averaged", 1.0),
                                         ("summed_outside", 4.0), ("averaged_outside", 1.0)])
def test_a_plate_over_the_batch_in_the_objective_sums_scaled_per_datum_values(per_datum, name,
                                                                               scale):
    """A per-datum value in the objective (a plate over the batch, data read as xs[i], inside
    expect or a plate of expects): its sum over a batch of B is scaled by N/B, its mean is not; the value (deterministic here)
    is the batch's per-datum log densities, summed times N/B, or averaged."""
    xs = np.linspace(-1, 1, 20).astype(np.float32)
    batcher = fitting.Batcher(lambda b: getattr(per_datum, name)(b), xs, 5)
    rows = xs[[3, 7, 11, 19]].tolist() + [xs[0]]
    params = batcher.entry.init(jax.random.PRNGKey(0))
    value = float(batcher.entry.value(params, jax.random.PRNGKey(1), [jnp.asarray(rows)]))
    per_point = -0.5 * (np.asarray(rows, np.float64) - 0.3) ** 2 - 0.5 * np.log(2 * np.pi)
    want = scale * per_point.sum() if name.startswith("summed") else per_point.mean()
    assert value == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("name, line", [("pooled", 39), ("centred", 45), ("centred_outside", 61)])
def test_other_uses_of_a_plate_over_the_batch_in_the_objective_are_errors(per_datum, name, line):
    """Only the sum or the mean of per-datum values estimates the full data's; a value that
    reads the whole batch inside the plate is not a per-datum value."""
    xs = np.linspace(-1, 1, 20).astype(np.float32)
    with pytest.raises(ppl.CompileError, match="minibatched data") as err:
        fitting.Batcher(lambda b: getattr(per_datum, name)(b), xs, 5)
    assert f"per_datum.ppl:{line}:" in str(err.value)  # the use, or a note at the plate


def test_a_per_datum_iwae_fits_with_minibatches(per_datum):
    """IWAE per data point (K = 3) on minibatches of 10 of 400 points reaches the exact
    amortised posterior of z_i given y_i: mean y_i / 2, scale sqrt(1/2)."""
    xs = np.random.default_rng(1).normal(scale=np.sqrt(2.0), size=400).astype(np.float32)
    steps = 1500
    r = ppl.fit(lambda b: per_datum.iwae_per_datum(b, 3), data=xs, batch_size=10, steps=steps,
                progress=False, optimizer=optax.adam(optax.cosine_decay_schedule(0.03, steps)))
    assert abs(float(r.constrained_params["amortised.a"]) - 0.5) < 0.05
    assert abs(float(r.constrained_params["amortised.s"]) - np.sqrt(0.5)) < 0.05


MIXTURE = """
gen mix(N: int) {
    param means: real[3] = normal_init(1.0)
    param w: real[3] = zeros()
    plate i in N {
        z ~ categorical(logits=w)
        x ~ normal(means[z], 1.0)
    }
}
gen chain(T: int) {
    param mu: real[2] = normal_init(1.0)
    z = 0
    for t in T {
        z ~ categorical(logits=[[1.0, 0.0], [0.0, 1.0]][z])
        x ~ normal(mu[z], 1.0)
    }
}
gen nothing() {}
"""


def test_an_exact_marginal_over_the_batch_is_scaled(data):
    """NumPyro's TraceEnum_ELBO on subsampled data: the exact marginal's per-point log
    likelihoods (a plate over the batch, each point's assignment summed out) are summed and
    scaled by N/B: the value is N/B times the batch's log marginal likelihood."""
    m = ppl.compile(MIXTURE)
    x = data["x"]
    build = lambda b: ppl.stdlib.elbo(  # noqa: E731
        ppl.stdlib.marginal(m.mix(b.shape[0]), keep=["x"], exact=True) | {"x": b}, m.nothing())
    batcher = fitting.Batcher(build, x, 20)
    params = batcher.entry.init(jax.random.PRNGKey(0))
    rows = np.asarray(x[:20], np.float64)
    value = float(batcher.entry.value(params, jax.random.PRNGKey(1), [jnp.asarray(x[:20])]))
    means = np.asarray(params["mix.means"], np.float64)
    log_w = np.asarray(jax.nn.log_softmax(params["mix.w"]), np.float64)
    table = log_w - 0.5 * (rows[:, None] - means) ** 2 - 0.5 * np.log(2 * np.pi)
    want = len(x) / 20 * np.logaddexp.reduce(table, axis=1).sum()
    assert value == pytest.approx(want, rel=1e-5)


def test_the_exact_marginal_layouts_agree(data):
    """Differential: outside a minibatch fit, a mixture's components are one K x N table
    before the plate (compiler/summation.py, plate_block); in a minibatch fit's entry each
    element sums its own (so that N/B scaling finds its log density). At N/B = 1 the two
    programs must give the same value and gradient, and compiling the plain one first
    must not leak its layout into the minibatch one (the lowering is not cached across)."""
    m = ppl.compile(MIXTURE)
    x = jnp.asarray(data["x"][:20])
    obj = ppl.stdlib.elbo(ppl.stdlib.marginal(m.mix(20), keep=["x"], exact=True) | {"x": x},
                          m.nothing())
    plain, inputs = obj.compiled()
    batched, _ = obj.compiled(data_scale=1.0, minibatched=(0,))
    ops = lambda entry: [e.attrs.get("axis") for e in walk(entry.program.functions["entry"].body)  # noqa: E731
                         if e.op == "fn" and e.attrs.get("name") == "logsumexp"]
    assert 0 in ops(plain) and 0 not in ops(batched), "the two layouts are not both exercised"
    params = plain.init(jax.random.PRNGKey(3))
    key = jax.random.PRNGKey(1)
    v1, g1 = plain.value_and_grad(params, key, inputs.arrays)
    v2, g2 = batched.value_and_grad(params, key, inputs.arrays)
    assert float(v1) == pytest.approx(float(v2), rel=1e-6)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-5, atol=1e-6)


def test_an_exact_marginal_of_a_sequence_cannot_be_minibatched(data):
    m = ppl.compile(MIXTURE)
    build = lambda b: ppl.stdlib.elbo(  # noqa: E731
        ppl.stdlib.marginal(m.chain(b.shape[0]), keep=["x"], exact=True) | {"x": b}, m.nothing())
    with pytest.raises(ppl.CompileError, match="this for loop reads minibatched data") as err:
        fitting.Batcher(build, data["x"], 20)
    assert err.value.line == 13  # the model's for loop (the forward algorithm)
