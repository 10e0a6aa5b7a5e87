"""Minibatches follow the data by value, and only plates over the batch are scaled.

``fit(build, data=..., batch_size=B)`` traces ``build`` on each batch inside
the compiled step, so an objective built from a transformed batch
(``b["x"] * 2.0``) sees the transformed rows of every batch (defect 4: they
were matched by array identity and frozen at the first batch). A log density
that reads the batch outside a plate over it, a ``for`` loop's included,
cannot be scaled by N/B: it is a compile error (defect 5).
"""

from __future__ import annotations

import numpy as np
import optax
import pytest

import ppl
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


def test_a_per_datum_bound_in_the_objective_is_refused_with_the_reason():
    """A plate over the batch written in the objective (one bound per data point) cannot
    be scaled by N/B: the error says where the plate is and what fit can scale."""
    m = ppl.compile("""
gen point(x: real) { z ~ normal(0.0, 1.0); y ~ normal(z, 1.0) }
gen guide(x: real) { z ~ normal(0.5 * x, 1.0) }
objective per_datum(xs: real[B]) {
    return expect {
        plate i in B {
            (t, lq) = sim(guide(xs[i]))
            v = density(point(xs[i]) | {y: xs[i]}, t) - lq
        }
        return sum(v)
    }
}""", "per_datum.ppl")
    xs = np.linspace(-1, 1, 20).astype(np.float32)
    with pytest.raises(ppl.CompileError, match="plate over the batch that is in the objective") \
            as info:
        ppl.fit(lambda b: m.per_datum(b), data=xs, batch_size=5, steps=1, progress=False)
    assert "per_datum.ppl:6:9" in str(info.value)  # the note at the objective's plate
