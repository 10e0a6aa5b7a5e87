"""Reads at a plate's own index become mapped inputs (passes/plate_reads.py): the same
values and gradients as the indexed reads, on every pattern the rule must take or leave.

One objective sums a value per pattern; it is compiled with the rewrite and without it
(``map_plate_reads`` replaced by the identity), and both give the same value and the same
gradient in every parameter. The IR shows which patterns were rewritten: every read the
rule may take is gone, and the ones it must leave (an index that is not the plate's own,
an array index, an array of another length, logits that vary inside the plate) are kept.
"""

from __future__ import annotations

import importlib

import jax
import numpy as np
import pytest

import ppl
from ppl.compiler.ir import format_program

SOURCE = """
gen point(m: real) { z ~ normal(m, 1.0) }
gen rows(W) { plate k in 3 { z ~ normal(W[k, 0], 1.0) } }

objective patterns(x: real[3], idx: int[2], zs: real[3]) {
    param W: real[3, 4] = normal_init(1.0)
    param v: real[3] = normal_init(1.0)
    param v4: real[4] = normal_init(1.0)
    param w: real[4] = normal_init(1.0)
    param p: real[4] = [0.1, 0.2, 0.3, 0.4]
    return expect {
        plate k in 3 { a = v[k] * x[k] }
        plate k in 3 { plate j in 4 { b = W[k, j] * w[j] } }
        plate k in 3 { r = W[k]; plate j in 4 { c = r[j] + W[k][j] * v[k] } }
        plate k in 3 { d = W[k, 1:3] }
        plate j in 4 { e = density(categorical(logits=w), j) }
        plate k in 3 { plate j in 4 { f = density(categorical(logits=W[k]), j) } }
        plate j in 3 { plate k in 3 { g = density(categorical(logits=W[k, 0:3]), j) } }
        plate k in 4 { h = v[k % 3] * v4[k] }
        plate k in 3 { u = W[k, idx] }
        plate k in 3 {
            q = 0.0
            for t in 2 { q = q + v[k] * x[t] }
        }
        plate k in 3 { o = v4[k] }
        plate j in 4 { s = density(categorical(probs=softmax(p)), j) }
        plate k in 3 { n = W[k, None] }
        dens = density(rows(W), {z: zs})
        return sum(a) + sum(b) + sum(c) + sum(d) + sum(e) + sum(f) + sum(g) + sum(h) + sum(u) +
            sum(q) + sum(o) + sum(s) + sum(n * n) + dens
    }
}
"""

# (the module: the package's attribute of that name is the pass function)
simplify_module = importlib.import_module("ppl.compiler.passes.simplify")

ARGS = (np.array([0.5, -1.0, 2.0], np.float32), np.array([3, 1], np.int32),
        np.array([0.3, -0.2, 1.1], np.float32))


def _compiled(rewrite: bool, monkeypatch):
    if not rewrite:
        monkeypatch.setattr(simplify_module, "map_plate_reads", lambda region: region)
    m = ppl.compile(SOURCE, "patterns.ppl")
    obj = m.patterns(*ARGS)
    params = obj.init(jax.random.PRNGKey(0))
    value, grads = obj.value_and_grad(jax.random.PRNGKey(1), params)
    ir = format_program(obj.program())
    monkeypatch.undo()
    return value, grads, ir


@pytest.fixture(scope="module")
def both():
    mp = pytest.MonkeyPatch()
    fast = _compiled(True, mp)
    general = _compiled(False, mp)
    return fast, general


def test_the_same_value_and_gradient(both):
    (v1, g1, _), (v2, g2, _) = both
    assert np.isfinite(float(v2))
    np.testing.assert_allclose(float(v1), float(v2), rtol=1e-6)
    assert set(g1) == set(g2)
    for name in g2:
        np.testing.assert_allclose(np.asarray(g1[name]), np.asarray(g2[name]), rtol=1e-5,
                                   atol=1e-6, err_msg=name)


def test_the_reads_the_rule_may_take_are_mapped_and_the_others_kept(both):
    (_, _, fast), (_, _, general) = both
    # Without the rewrite: every pattern's read is an index (and the categoricals logpdfs).
    assert general.count("index[") > fast.count("index[")
    assert "log_softmax" in fast and "log_softmax" not in general
    # Kept: v[k % 3] (not the plate's own index), W[k, idx] (an array index), and the
    # categorical at j whose logits vary with the inner plate (g), and the probs one (s).
    assert "fn[name=mod]" in fast
    assert fast.count("logpdf[dist=categorical, form=(logits)]") == 1  # g
    assert "logpdf[dist=categorical, form=(probs)]" in fast
