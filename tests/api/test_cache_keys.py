"""Cache keys: calls share a compiled program only if they lower to the same one.

The entry builder (ppl/entries.py) keys each compiled entry by the kind, the
declaration, a structural signature of the arguments (declarations, static
values, keyword and record field names, observed addresses, array types) and
the options (estimator overrides, data scale, minibatched inputs). Building
an entry lowers it and runs the passes but compiles nothing with XLA until it
is called, so most checks here are cheap: they compare entries and programs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl.compiler.ir import format_program, walk

SOURCE = """
gen a() { z ~ normal(0.0, 1.0); x ~ normal(100.0, 0.01) }
gen b() { z ~ normal(0.0, 1.0); x ~ normal(-100.0, 0.01) }
gen g(loc: real, scale: real) { x ~ normal(loc, scale) }
gen model() { z ~ normal(0.0, 1.0); x ~ normal(z, 1.0) }
gen other() { z ~ normal(1.0, 1.0); x ~ normal(z, 1.0) }
gen fam() { param mu: real = 0.0; z ~ normal(mu, 1.0) }
gen reg(x: real[N]) {
    w ~ normal(0.0, 1.0)
    plate i in N { y ~ normal(w * x[i], 0.5) }
}
gen reg_fam() { param m: real = 0.0; w ~ normal(m, 1.0) }
fn diff(r) { return r.a - r.b }
objective lin(loc: real, scale: real) { param t: real = 1.0; return loc * t - scale }
"""


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE)


def normal_logpdf(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def test_predictive_runs_the_model_it_is_called_on(m):
    """Defect 3: the predictive entry's key left out the model, so b reused a's program."""
    given = ppl.Trace({"z": jnp.zeros(4)})
    key = jax.random.PRNGKey(0)
    from_a = m.a().predictive(key, given)
    from_b = m.b().predictive(key, given)
    assert np.all(np.asarray(from_a["x"]) > 50)
    assert np.all(np.asarray(from_b["x"]) < -50)


def test_keyword_arguments_bind_by_name(m):
    """Defect 9: the second call reused the first's positions (loc = 3, scale = 0.2)."""
    first = m.g(loc=1.0, scale=2.0).density({"x": 0.5})
    second = m.g(scale=3.0, loc=0.2).density({"x": 0.5})
    positional = m.g(0.2, 3.0).density({"x": 0.5})
    np.testing.assert_allclose(float(first), normal_logpdf(0.5, 1.0, 2.0), rtol=1e-5)
    np.testing.assert_allclose(float(second), normal_logpdf(0.5, 0.2, 3.0), rtol=1e-5)
    np.testing.assert_allclose(float(positional), float(second), rtol=1e-6)


def test_objective_keywords_bind_by_name(m):
    key = jax.random.PRNGKey(0)
    params = {"lin.t": jnp.float32(1.0)}
    v1, g1 = m.lin(loc=1.0, scale=2.0).value_and_grad(key, params)
    v2, g2 = m.lin(scale=3.0, loc=0.2).value_and_grad(key, params)
    assert (float(v1), float(g1["lin.t"])) == pytest.approx((-1.0, 1.0))
    assert (float(v2), float(g2["lin.t"])) == pytest.approx((-2.8, 0.2))


def test_record_fields_bind_by_name_and_a_wrong_record_is_an_error(m):
    assert float(m.diff({"a": 1.0, "b": 2.0})) == pytest.approx(-1.0)
    assert float(m.diff({"b": 1.0, "a": 2.0})) == pytest.approx(1.0)
    with pytest.raises(ppl.PPLError, match="has no field 'b'"):
        m.diff({"a": 1.0, "c": 2.0})  # used to return a number (the first record's program)


def test_different_models_objectives_overrides_and_scales_never_share_a_program(m):
    obs = {"x": 1.0}
    base = ppl.stdlib.elbo(m.model() | obs, m.fam())
    variants = {
        "another model": ppl.stdlib.elbo(m.other() | obs, m.fam()),
        "another objective": ppl.stdlib.iwelbo(m.model() | obs, m.fam(), K=2),
        "another observation dtype": ppl.stdlib.elbo(m.model() | {"x": 1}, m.fam()),
        "an estimator override": base.with_estimators({"z": "reinforce"}),
    }
    entry = base.compiled()[0]
    # Other data of the same dtype and shape: the same program.
    assert ppl.stdlib.elbo(m.model() | {"x": -3.0}, m.fam()).compiled()[0] is entry
    for what, obj in variants.items():
        other = obj.compiled()[0]
        assert other is not entry and other.key != entry.key, what
    draws = lambda e: {x.attrs["estimator"] for x in walk(e.program.functions["entry"].body)  # noqa: E731
                       if x.op == "draw"}
    assert draws(entry) == {"reparam"}
    assert draws(variants["an estimator override"].compiled()[0]) == {"reinforce"}


def test_data_scales_never_share_a_program(m):
    x = jnp.linspace(-1.0, 1.0, 8)
    obj = ppl.stdlib.elbo(m.reg(x) | {"y": x}, m.reg_fam())
    plain = obj.compiled()[0]
    by_4 = obj.compiled(data_scale=4.0, minibatched={0, 1})[0]
    by_2 = obj.compiled(data_scale=2.0, minibatched={0, 1})[0]
    assert len({id(plain), id(by_4), id(by_2)}) == 3
    assert "4.0" in format_program(by_4.program) and "4.0" not in format_program(plain.program)
    assert obj.compiled(data_scale=4.0, minibatched={0, 1})[0] is by_4
