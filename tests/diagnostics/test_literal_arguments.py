"""Literal distribution parameters outside their domain are caret errors (defect 13's part).

The checker (for literals written in the source) and the lowering (for any
parameter known at compile time) ask the distribution row's
``check_literal(form, name, value) -> str | None`` and report its message at
the argument. Here ``normal`` is wrapped in a stub row that has the method, so
the test does not depend on which rows of the library have it yet; the last
test uses the real library where its ``normal`` row has it.
"""

from __future__ import annotations

import pytest

import ppl
import ppl.module
from ppl.stdlib.library import STANDARD

SOURCE = """
objective zero_scale() {
    param th: real = 0.0
    return expect { x ~ normal(th, 0.0); return x }
}
objective negative_keyword() {
    param th: real = 0.0
    return expect { x ~ normal(loc=th, scale=-1.0); return x }
}
objective computed_scale() {
    param th: real = 0.0
    return expect { x ~ normal(th, 1.0 - 1.0); return x }
}
objective fine() {
    param th: real = 0.0
    return expect { x ~ normal(th, 2.0); return x }
}
"""


class _Normal:
    """The real normal row, with a ``check_literal`` rejecting a scale <= 0."""

    def __init__(self, row):
        self._row = row
        self.calls = []

    def __getattr__(self, name):
        return getattr(self._row, name)

    def check_literal(self, form, name, value):
        self.calls.append((form, name, value))
        if name == "scale" and not value > 0:
            return f"normal's scale must be positive, got {value}"
        return None


@pytest.fixture
def stub_normal(monkeypatch):
    lib = STANDARD.with_externs({})
    lib.distributions = dict(lib.distributions)
    row = lib.distributions["normal"] = _Normal(lib.distributions["normal"])
    monkeypatch.setattr(ppl.module, "standard_library", lambda externs=None: lib)
    return row


def test_checker_reports_each_literal_at_its_argument(stub_normal):
    with pytest.raises(ppl.CheckError) as err:
        ppl.compile(SOURCE, "literals.ppl")
    messages = [(d.message, d.span.line, d.span.column) for d in err.value.diagnostics]
    assert messages == [("normal's scale must be positive, got 0.0", 4, 36),
                        ("normal's scale must be positive, got -1.0", 8, 46)]
    assert (("loc", "scale"), "scale", 2.0) in stub_normal.calls  # fine() was asked too


def test_lowering_reports_static_parameters(stub_normal, monkeypatch):
    monkeypatch.setattr(ppl.module, "check_program", lambda *args, **kwargs: None)
    m = ppl.compile(SOURCE, "literals.ppl")
    for name, column in [("zero_scale", 36), ("computed_scale", 36)]:
        with pytest.raises(ppl.CompileError) as err:
            getattr(m, name)().program()
        assert err.value.first.message == "normal's scale must be positive, got 0.0"
        assert err.value.column == column
    m.fine().program()


def test_real_library_rejects_a_zero_scale():
    with pytest.raises(ppl.CheckError) as err:
        ppl.compile(SOURCE.split("objective negative_keyword")[0], "literals.ppl")
    assert err.value.line == 4 and err.value.column == 36
    assert "scale" in err.value.first.message
