"""An Equinox module as a learnable extern (ppl.eqx_module): its real arrays are the
program's parameters, starting at the module's own values, learned by fit, and
called inside a plate. Skipped without equinox (the ppl[nn] extra)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

eqx = pytest.importorskip("equinox")

import ppl  # noqa: E402
from conjugate import assert_exact_elbo, fit_and_estimate, program  # noqa: E402

LINEAR = eqx.nn.Linear("scalar", 2, key=jax.random.PRNGKey(3))


def test_an_equinox_family_reaches_the_exact_elbo():
    module = program("plate i in N { row = enc(x[i]) }\n    out = row",
                     externs={"enc": ppl.eqx_module(LINEAR)})
    objective, result, values = fit_and_estimate(module)
    start = objective.init(jax.random.PRNGKey(0))
    assert sorted(start) == ["enc.bias", "enc.weight"]
    np.testing.assert_array_equal(start["enc.weight"], LINEAR.weight)
    np.testing.assert_array_equal(start["enc.bias"], LINEAR.bias)
    assert_exact_elbo(values)
    assert abs(float(result.params["enc.weight"][0, 0]) - 0.8) < 0.1


def test_a_module_without_parameters_is_refused():
    with pytest.raises(ppl.DataError, match="no parameters"):
        ppl.eqx_module(eqx.nn.Lambda(lambda x: x))
