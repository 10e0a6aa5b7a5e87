"""The IR verifier: every pass keeps the invariants, and the verifier catches broken IR.

``passes.run(program, check=True)`` verifies the IR before the first pass and
after each one. The negative tests build small broken functions by hand: a
variable used before it is defined, defined twice, used outside its region,
an unknown op, a wrong number of regions, a non-scalar literal, a missing
entry point.
"""

import pytest

from ppl.compiler import passes
from ppl.compiler.ir import (OPS, Eqn, Function, Lit, Program, Region, Var, VerifyError, format_program,
                             verify, walk)
from ppl.compiler.types import INT, REAL, ArrayType


def test_every_pass_keeps_the_invariants(build_ir, program_name):
    program = build_ir(program_name, "lower")
    final = passes.run(program, check=True)
    verify(final)
    body = final.functions[final.entry].body
    ops = {e.op for e in walk(body)}
    assert ops <= set(OPS)
    # After expansion nothing is left for the passes to expand or inline.
    assert not ops & {"sample", "call", "sim", "density"}
    assert list(final.functions) == [final.entry]


@pytest.mark.parametrize("after", passes.PASS_NAMES)
def test_stopping_after_each_pass_verifies(build_ir, program_name, after):
    verify(build_ir(program_name, after))


def test_run_with_check_stops_after_the_named_pass(build_ir):
    program = build_ir("nested", "lower")
    inlined = passes.run(program, after="inline", check=True)
    ops = {e.op for e in walk(inlined.functions[inlined.entry].body)}
    assert "sim" in ops and "call" not in ops


# ---------------------------------------------------------------- hand-built IR


def program_of(eqns, outs, params=()):
    fn = Function("f", Region(list(params), eqns, outs))
    return Program({"f": fn}, "f")


def add(out, a, b):
    return Eqn("fn", [out], [a, b], {"name": "add"})


def test_a_well_formed_program_verifies():
    x, y, z = Var(REAL, "x"), Var(REAL, "y"), Var(REAL, "z")
    program = program_of([add(y, x, Lit(1.0, REAL)), add(z, y, y)], [z], [x])
    verify(program)
    assert "%z: real = fn[name=add](%y, %y)" in format_program(program)


def test_undefined_variable():
    x, y, ghost = Var(REAL, "x"), Var(REAL, "y"), Var(REAL, "ghost")
    with pytest.raises(VerifyError, match="ghost.*not defined"):
        verify(program_of([add(y, x, ghost)], [y], [x]))


def test_use_before_definition():
    x, y, z = Var(REAL, "x"), Var(REAL, "y"), Var(REAL, "z")
    with pytest.raises(VerifyError, match="not defined"):
        verify(program_of([add(z, y, x), add(y, x, x)], [z], [x]))


def test_undefined_output():
    x, ghost = Var(REAL, "x"), Var(REAL, "ghost")
    with pytest.raises(VerifyError, match="used by yield"):
        verify(program_of([], [ghost], [x]))


def test_variable_defined_twice():
    x, y = Var(REAL, "x"), Var(REAL, "y")
    with pytest.raises(VerifyError, match="defined twice"):
        verify(program_of([add(y, x, x), add(y, x, x)], [y], [x]))


def test_parameter_redefined_by_an_equation():
    x = Var(REAL, "x")
    with pytest.raises(VerifyError, match="defined twice"):
        verify(program_of([add(x, x, x)], [x], [x]))


def test_unknown_op():
    x, y = Var(REAL, "x"), Var(REAL, "y")
    with pytest.raises(VerifyError, match="unknown op 'frobnicate'"):
        verify(program_of([Eqn("frobnicate", [y], [x])], [y], [x]))


def test_wrong_number_of_regions():
    x, y = Var(REAL, "x"), Var(REAL, "y")
    with pytest.raises(VerifyError, match="plate has 0 regions, expected 1"):
        verify(program_of([Eqn("plate", [y], [x], {"size": 3})], [y], [x]))
    with pytest.raises(VerifyError, match="cond has 1 regions, expected 2"):
        verify(program_of([Eqn("cond", [], [x], {}, [Region([], [], [])])], [], [x]))


def test_variable_of_a_region_is_not_visible_outside_it():
    x, i, inner, stacked_, leak = (Var(REAL, "x"), Var(INT, "i"), Var(REAL, "inner"),
                                   Var(ArrayType("float32", (3,)), "stacked"), Var(REAL, "leak"))
    body = Region([i], [add(inner, x, x)], [inner])  # reading x from the enclosing scope is fine
    plate = Eqn("plate", [stacked_], [], {"size": 3}, [body])
    verify(program_of([plate], [stacked_], [x]))
    with pytest.raises(VerifyError, match="inner.*not defined in scope"):
        verify(program_of([Eqn("plate", [stacked_], [], {"size": 3}, [Region([i], [add(inner, x, x)], [inner])]),
                           add(leak, inner, x)], [leak], [x]))


def test_variable_of_one_branch_is_not_visible_in_the_other():
    c, a, b, out = Var(ArrayType("bool", ()), "c"), Var(REAL, "a"), Var(REAL, "b"), Var(REAL, "out")
    one = Lit(1.0, REAL)
    then = Region([], [add(a, one, one)], [a])
    orelse = Region([], [add(b, a, one)], [b])  # a belongs to the other branch
    with pytest.raises(VerifyError, match="not defined in scope"):
        verify(program_of([Eqn("cond", [out], [c], {}, [then, orelse])], [out], [c]))


def test_literals_are_scalars():
    x, y = Var(REAL, "x"), Var(REAL, "y")
    with pytest.raises(VerifyError, match="not a scalar"):
        verify(program_of([add(y, x, Lit(1.0, ArrayType("float32", (2,))))], [y], [x]))


def test_missing_entry():
    x = Var(REAL, "x")
    program = program_of([], [x], [x])
    program.entry = "g"
    with pytest.raises(VerifyError, match="entry 'g'"):
        verify(program)


def test_run_with_check_rejects_broken_input():
    x, y, ghost = Var(REAL, "x"), Var(REAL, "y"), Var(REAL, "ghost")
    with pytest.raises(VerifyError):
        passes.run(program_of([add(y, x, ghost)], [y], [x]), check=True)
