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
