"""A repeated ``ppl.fit`` of the same objective with data of the same shapes compiles
nothing, and the cached program takes the new data as arguments (never as constants)."""

from __future__ import annotations

import jax
import jax.monitoring
import optax
import pytest

import ppl

SOURCE = """
gen model() { z ~ normal(0.0, 1.0); x ~ normal(z, 1.0) }
gen fam() { param mu: real = 0.0; z ~ normal(mu, 1.0) }
"""
COMPILE = "/jax/core/compile/backend_compile_duration"


@pytest.fixture(scope="module")
def compiles():
    events: list[str] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: events.append(kw.get("fun_name", "?")) if event == COMPILE else None)
    return events


def test_a_second_fit_compiles_nothing_and_uses_its_own_data(compiles):
    m = ppl.compile(SOURCE)
    steps = 400
    opt = optax.adam(optax.cosine_decay_schedule(0.1, steps))
    fit = lambda x: ppl.fit(ppl.stdlib.elbo(m.model() | {"x": x}, m.fam()), steps=steps,  # noqa: E731
                            chunk=50, optimizer=opt, progress=False)
    first = fit(2.0)
    compiles.clear()
    second = fit(-2.0)
    assert compiles == []
    # The posterior means are x / 2: the second fit saw its own observation.
    assert abs(float(first.params["fam.mu"]) - 1.0) < 0.15
    assert abs(float(second.params["fam.mu"]) + 1.0) < 0.15


def test_the_parser_uses_larks_grammar_cache():
    """The first compile in a process loads the LALR tables instead of building them."""
    from ppl.compiler.parser import lark_parser

    assert lark_parser().options.cache is True


LINE = """
gen line(x: real[N]) {
    w ~ normal(0.0, 1.0)
    plate i in N { y ~ normal(w * x[i], 0.5) }
}
gen line_fam() { param m: real = 0.0; param s: real<lower=0> = 0.5; w ~ normal(m, s) }
"""


def test_a_minibatch_fit_follows_what_build_closes_over_by_value(compiles):
    """The cached step is keyed by what ``build`` computes, not by the function: a
    closure whose array changed gets its own program (it was reused, stale), and an
    equal new lambda compiles nothing."""
    import numpy as np

    m = ppl.compile(LINE)
    rng = np.random.default_rng(0)
    x = rng.normal(size=200).astype(np.float32)
    y = (0.4 * x + 0.5 * rng.normal(size=200)).astype(np.float32)
    scale = np.full(1, 2.0, np.float32)
    opt = optax.adam(0.05)

    def fit(build):
        r = ppl.fit(build, data={"x": x, "y": y}, batch_size=20, steps=1500, optimizer=opt,
                    progress=False)
        return float(r.constrained_params["line_fam.m"])

    def exact(s):  # the conjugate posterior mean of w given y ~ normal(w·s·x, 0.5)
        xs = s * x.astype(np.float64)
        return (xs * y).sum() / 0.25 / (1 + (xs ** 2).sum() / 0.25)

    build = lambda b: ppl.stdlib.elbo(m.line(b["x"] * scale) | {"y": b["y"]}, m.line_fam())  # noqa: E731
    assert abs(fit(build) - exact(2.0)) < 0.03
    scale[:] = 4.0
    assert abs(fit(build) - exact(4.0)) < 0.03  # exact(2.0) - exact(4.0) is 0.09
    compiles.clear()
    again = lambda b: ppl.stdlib.elbo(m.line(b["x"] * scale) | {"y": b["y"]}, m.line_fam())  # noqa: E731
    assert abs(fit(again) - exact(4.0)) < 0.03
    assert compiles == []
