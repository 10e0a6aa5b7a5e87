"""The programs whose IR the golden and verifier tests look at.

Each entry of :data:`PROGRAMS` is a source text and the entry point to take
the IR of: ``simulate`` of a generative function applied to its arguments,
or ``density`` of a (conditioned) one given a trace. Every program is
compiled in a fresh module, so the printed IR holds only what that program
lowers (a module's lowering caches every function it has specialised).

``program_name`` is parametrised over every program for any test that asks
for it.
"""

from __future__ import annotations

import numpy as np
import pytest

import ppl
from ppl.compiler.ir import Program
from ppl.module import Inputs
from ppl.trace import Trace

X4 = np.float32([0.0, 1.0, 2.0, 3.0])

COIN = """
gen coin(n: int) {
    p ~ beta(2.0, 2.0)
    plate i in n { flips ~ bernoulli(p) }
    return p
}
"""

LINREG = """
gen linreg(x) {
    w ~ normal(0.0, 1.0)
    b ~ normal(0.0, 1.0)
    s ~ halfnormal(1.0)
    plate i in size(x) { y ~ normal(w * x[i] + b, s) }
}
"""

NESTED = """
gen sub(mu) {
    x ~ normal(mu, 1.0)
    z ~ normal(x, 0.5) at "zz"
    return x + 1.0
}
gen top(n: int) {
    m ~ normal(0.0, 1.0)
    y ~ sub(m)
    plate i in n { c ~ sub(y) }
    return (y, {a: m})
}
"""

WALK = """
gen walk(T: int) {
    s = 0.0
    for t in T {
        s ~ normal(0.9 * s, 1.0) at "x"
        y ~ normal(s, 0.5)
    }
    return s
}
"""

GUIDE = """
gen guide(c) {
    param a: real<lower=0> = 1.0
    param mu: real[2] = zeros()
    p ~ beta(a, 2.0)
    z ~ mvnormal_diag(mu, 1.0)
    if p > c { factor -1.0 } else { factor log(p) }
    return where(p > c, z, -z)
}
"""

# name -> (source, the generative function, mode, trace for density)
PROGRAMS = {
    "coin": (COIN, lambda m: m.coin(5), "simulate", None),
    "linreg": (LINREG, lambda m: m.linreg(X4), "simulate", None),
    "nested": (NESTED, lambda m: m.top(3), "simulate", None),
    "walk": (WALK, lambda m: m.walk(4), "simulate", None),
    "guide": (GUIDE, lambda m: m.guide(0.5), "simulate", None),
    "linreg_conditioned": (LINREG, lambda m: m.linreg(X4) | {"y": X4}, "density",
                           {"w": 0.0, "b": 0.0, "s": 1.0}),
}


def density_ir(g: ppl.GenerativeFunction, trace: dict, after: str) -> Program:
    """The IR of ``g.density(trace)`` after pass ``after`` (``g.ir`` gives only simulate's)."""
    inputs = Inputs()
    tvar = inputs.add_trace(Trace(trace))
    gv = g.gen_value(inputs)
    lowerer = g.module.lowerer

    def build(inp, b):
        return [lowerer.emit_density(gv, tvar, b, None)]

    return g.module.ir(None, build, inputs, after)


def program_ir(name: str, after: str) -> Program:
    """The IR of program ``name`` after pass ``after``, from a fresh module."""
    source, make, mode, trace = PROGRAMS[name]
    g = make(ppl.compile(source, name=f"<{name}>"))
    if mode == "simulate":
        return g.ir(after=after)
    return density_ir(g, trace, after)


def pytest_generate_tests(metafunc):
    if "program_name" in metafunc.fixturenames:
        metafunc.parametrize("program_name", list(PROGRAMS))


@pytest.fixture
def build_ir():
    return program_ir


@pytest.fixture
def program_names():
    return list(PROGRAMS)
