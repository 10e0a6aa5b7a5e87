"""The estimated-real typing, checked on the syntax tree and in the lowering alike.

Each ``tests/diagnostics/bad/check_estimate_*.ppl`` is rejected by the checker
when the program is loaded (its golden is there). Here the same programs are
lowered with the checker turned off: the lowering's own tracking of estimates
(through loops, plates, traced branches, calls and keyword arguments) must
reject each with the same message at the same place. Programs that use
estimates soundly must pass both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import ppl
import ppl.module
from ppl.compiler.diagnostics import CheckError, CompileError

BAD = Path(__file__).parent.parent / "diagnostics" / "bad"
PROGRAMS = sorted(p.name for p in BAD.glob("check_estimate_*.ppl"))
MODELS = ("\ngen any_model() { z ~ normal(0.0, 1.0) }"
          "\ngen any_family() { param mu: real = 0.0; z ~ normal(mu, 1.0) }\n")
ARGUMENTS = {"branchy": (1.0,)}


def unchecked(source: str, name: str, monkeypatch) -> ppl.module.Module:
    """A module built without the checker: only the lowering stands between it and the IR."""
    with monkeypatch.context() as patch:
        patch.setattr(ppl.module, "check_program", lambda *args, **kwargs: None)
        return ppl.compile(source, name)


def objective_of(m):
    decl = [d for d in m.program.decls if d.kind == "objective"][-1]
    if decl.args and decl.args[0].type is not None and decl.args[0].type.name == "gen":
        return getattr(m, decl.name)(m.any_model(), m.any_family())
    return getattr(m, decl.name)(*ARGUMENTS.get(decl.name, ()))


def test_every_rejection_has_a_program():
    assert len(PROGRAMS) >= 12


@pytest.mark.parametrize("name", PROGRAMS)
def test_lowering_rejects_what_the_checker_rejects(name, monkeypatch):
    source = (BAD / name).read_text() + MODELS
    with pytest.raises(CheckError) as checked:
        ppl.compile(source, name)
    m = unchecked(source, name, monkeypatch)
    with pytest.raises(CompileError) as lowered:
        objective_of(m).program()
    first = checked.value.first
    assert lowered.value.first.message == first.message
    assert (lowered.value.line, lowered.value.column) == (checked.value.line, checked.value.column)


SOUND = """
gen model() { z ~ normal(0.0, 1.0); x ~ normal(z, 1.0) }
gen family() { param mu: real = 0.0; z ~ normal(mu, 1.0) }
objective independent() {
    param m: real = 0.0
    a = expect { z ~ normal(m, 1.0); return z }
    b = expect { w ~ normal(m, 1.0); return w }
    return a * b - 2.0 * a / 3.0
}
objective summed(n: int) {
    param m: real = 0.0
    e = expect { z ~ normal(m, 1.0); return z }
    total = 0.0
    for t in n { total = total + e * float(t) }
    plate i in n { scaled = e * float(i) }
    return total + sum(scaled) + mean([e, e]) + stop_gradient(e)
}
objective selected(c: real) {
    param m: real = 0.0
    e = expect { z ~ normal(m, 1.0); return z }
    f = expect { w ~ normal(m, 1.0); return w }
    if c > 0.0 { y = e } else { y = 2.0 * e }
    return where(c > 1.0, y, -e) * f
}
fn twice(v) { return v + v }
objective through_calls() {
    param m: real = 0.0
    return twice(expect { z ~ normal(m, 1.0); return z }) * expect { w ~ normal(m, 1.0); return w }
}
objective nested_loops(n: int) {
    param m: real = 0.0
    e = expect { z ~ normal(m, 1.0); return z }
    f = expect { w ~ normal(m, 1.0); return w }
    acc = 0.0
    other = 1.0
    for t in n { for u in n { acc = acc + e; other = other * 2.0 } }
    return acc * f + log(other)
}
objective counted() {
    return expect { k ~ poisson(3.0); return k * k }
}
"""


@pytest.mark.parametrize("call", [
    lambda m: m.independent(), lambda m: m.summed(3), lambda m: m.selected(0.5),
    lambda m: m.through_calls(), lambda m: m.counted(), lambda m: m.nested_loops(2),
    lambda m: ppl.stdlib.elbo(m.model() | {"x": 1.0}, m.family()),
    lambda m: ppl.stdlib.cubo(m.model() | {"x": 1.0}, m.family(), 3, 2.0),
])
def test_sound_uses_of_estimates_pass_both(call):
    m = ppl.compile(SOUND, "sound.ppl")  # the checker accepts every declaration
    call(m).program()                     # and so does the lowering
