"""The intermediate representation: typed A-normal form with regions.

Shaped like a jaxpr. A :class:`Function` has a body :class:`Region`; a region
has parameters, a list of :class:`Eqn` s and its output atoms; an equation has
output variables, an op name, atom arguments (a :class:`Var` or a
:class:`Lit`), static attributes, a source span, and nested regions for
structured ops. Regions may refer to variables of enclosing regions (lexical
scope), so a pass that moves a region must keep it inside its scope.

Ops, by the stage that introduces them (``OPS`` is the table the verifier and
the printer read):

- lowering: ``fn`` (a library function), ``index``, ``param``, ``sample``,
  ``call`` (a generative function at an address), ``factor``, ``plate``,
  ``scan``, ``cond``, ``sim``, ``density``, ``generate`` (simulation with some
  choices given: posterior predictive), ``trace_get``, ``trace_retval``, ``expect``;
- expansion of ``sim``/``density`` (passes/expand.py): ``draw`` (a random
  choice), ``logpdf``, ``make_trace``.

The printer gives a stable text form (``%name`` variables numbered in order of
definition) used by golden tests and by ``ppl ir``::

    >>> x = Var(REAL, "x")
    >>> y = Var(REAL, "y")
    >>> f = Function("f", Region([x], [Eqn("fn", [y], [x, Lit(2.0, REAL)], {"name": "mul"})], [y]))
    >>> print(format_function(f))
    def f(%x: real) {
      %y: real = fn[name=mul](%x, 2.0)
      return %y
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from .diagnostics import Span
from .types import REAL, ArrayType, TraceType, Type


class Var:
    """A variable; identity is the object. ``hint`` is the source name, if any."""

    __slots__ = ("type", "hint")

    def __init__(self, type: Type, hint: str = ""):
        self.type = type
        self.hint = hint

    def __repr__(self) -> str:
        return f"Var({self.hint or '_'}: {self.type!r})"


@dataclass(frozen=True)
class Lit:
    """A scalar literal."""

    value: int | float | bool
    type: ArrayType

    def __repr__(self) -> str:
        return repr(self.value).lower() if isinstance(self.value, bool) else repr(self.value)


Atom = Var | Lit


@dataclass(eq=False)
class Region:
    params: list[Var]
    eqns: list["Eqn"]
    outs: list[Atom]


@dataclass(eq=False)
class Eqn:
    op: str
    outs: list[Var]
    args: list[Atom]
    attrs: dict[str, Any] = field(default_factory=dict)
    regions: list[Region] = field(default_factory=list)
    span: Span | None = None


@dataclass(eq=False)
class Function:
    name: str
    body: Region
    kind: str = "gen"  # "gen" | "fn" | "objective" | "entry"
    span: Span | None = None

    @property
    def params(self) -> list[Var]:
        return self.body.params


@dataclass(eq=False)
class Program:
    """Functions by specialised name, with the entry point and the parameters reached."""

    functions: dict[str, Function]
    entry: str
    params: dict[str, "ParamInfo"] = field(default_factory=dict)
    # Minibatched inputs: entry input var -> N/B. A plate reading one along its
    # axis has its log density scaled by N/B (see passes/expand.py).
    data_scale: dict[Var, float] = field(default_factory=dict)


@dataclass(eq=False)
class ParamInfo:
    """A learnable parameter: its path, constrained type, constraint and initialiser.

    ``init`` is a parameter-free :class:`Function` computing the initial
    (constrained) value; it may use ``init`` ops, which draw from a key.
    """

    path: str
    type: ArrayType
    constraint: tuple  # ("real",) | ("lower", a) | ("upper", b) | ("interval", a, b) | ("simplex",) ...
    init: Function
    span: Span | None = None
    # A running-average baseline's decay: ``fit`` updates this state parameter as
    # b ← b + (1 − decay)·g_b / g_w, not with the optimiser, where g_b = Σ_u c_u (ℓ_u − b)
    # is its gradient estimate (one term per use u, each use's expectation entering the
    # objective with the factor c_u) and g_w = Σ_u c_u that of its weight (below).
    running: float | None = None
    # The weight of running baseline ``weight_of``: a state parameter held at 0 whose
    # gradient estimate is Σ_u c_u (each use adds its tangent to its block's value once).
    weight_of: str | None = None


# Ops: name -> (number of regions, is it random). The verifier checks counts.
OPS: dict[str, tuple[int, bool]] = {
    "fn": (0, False), "index": (0, False), "param": (0, False), "init": (0, True),
    "sample": (0, True), "call": (0, True), "factor": (0, False),
    "plate": (1, False), "scan": (1, False), "cond": (2, False), "expect": (1, False),
    "sim": (None, True), "density": (None, False),  # one region once inlined, none before
    "generate": (None, True),
    "trace_get": (0, False), "trace_retval": (0, False),
    "draw": (0, True), "logpdf": (0, False), "make_trace": (0, False),
}


def call_prefix(prefix: str, address: str) -> str:
    """The prefix of the addresses a call at ``address`` draws under ``prefix``: nested,
    ``prefix + address + "/"``, or none for an included call (``y ~ part() at ""``).

        >>> call_prefix("enc/", "h"), call_prefix("enc/", "")
        ('enc/h/', 'enc/')
    """
    return prefix + address + "/" if address else prefix


def walk(region: Region) -> Iterator[Eqn]:
    """Every equation of a region, nested regions included, in order."""
    for eqn in region.eqns:
        yield eqn
        for sub in eqn.regions:
            yield from walk(sub)


# ---------------------------------------------------------------- printer


class _Namer:
    def __init__(self):
        self.names: dict[Var, str] = {}
        self.used: set[str] = set()

    def name(self, v: Atom) -> str:
        if isinstance(v, Lit):
            return repr(v)
        key = v
        if key not in self.names:
            base = v.hint or "v"
            name, n = base, 1
            while name in self.used:
                name = f"{base}.{n}"
                n += 1
            self.used.add(name)
            self.names[key] = name
        return "%" + self.names[key]


def _format_attr(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_attr(v) for v in value) + ")"
    if isinstance(value, Function):
        return value.name
    return repr(value)


def _format_region(region: Region, namer: _Namer, indent: str, lines: list[str]) -> None:
    for eqn in region.eqns:
        outs = ", ".join(f"{namer.name(v)}: {v.type!r}" for v in eqn.outs)
        attrs = ", ".join(f"{k}={_format_attr(v)}" for k, v in eqn.attrs.items())
        head = f"{eqn.op}[{attrs}]" if attrs else eqn.op
        args = ", ".join(namer.name(a) for a in eqn.args)
        text = f"{head}({args})"
        lines.append(f"{indent}{outs} = {text}" if outs else f"{indent}{text}")
        for i, sub in enumerate(eqn.regions):
            params = ", ".join(f"{namer.name(p)}: {p.type!r}" for p in sub.params)
            lines[-1] += " {" if i == 0 else ""
            if i > 0:
                lines.append(f"{indent}}} else {{")
            if params:
                lines.append(f"{indent}  |{params}|")
            _format_region(sub, namer, indent + "  ", lines)
            lines.append(f"{indent}  yield {', '.join(namer.name(o) for o in sub.outs)}".rstrip())
        if eqn.regions:
            lines.append(f"{indent}}}")


def format_function(fn: Function, namer: _Namer | None = None) -> str:
    namer = namer or _Namer()
    params = ", ".join(f"{namer.name(p)}: {p.type!r}" for p in fn.params)
    lines = [f"def {fn.name}({params}) {{"]
    _format_region(fn.body, namer, "  ", lines)
    lines.append(f"  return {', '.join(namer.name(o) for o in fn.body.outs)}".rstrip())
    lines.append("}")
    return "\n".join(lines)


def format_program(program: Program) -> str:
    parts = []
    for path, info in program.params.items():
        parts.append(f"param {path}: {info.type!r} constraint={_format_attr(info.constraint)}")
    for name in sorted(program.functions, key=lambda n: (n != program.entry, n)):
        parts.append(format_function(program.functions[name]))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- verifier


class VerifyError(AssertionError):
    """An IR invariant is broken: a compiler bug, never a user error."""


def verify(program: Program) -> None:
    """Check the invariants every pass must keep.

    Every variable is defined once, before use, in an enclosing scope; ops
    are known and have their number of regions; a function's outputs are
    defined; literal types are scalars.
    """
    for fn in program.functions.values():
        defined: set[Var] = set()
        _verify_region(fn.body, [set()], defined, fn.name)
    if program.entry not in program.functions:
        raise VerifyError(f"entry {program.entry!r} is not a function of the program")


def _verify_region(region: Region, scopes: list[set[Var]], defined: set[Var], where: str) -> None:
    scope: set[Var] = set()
    scopes = scopes + [scope]

    def define(v: Var):
        if not isinstance(v, Var):
            raise VerifyError(f"{where}: output {v!r} is not a variable")
        if v in defined:
            raise VerifyError(f"{where}: {v!r} is defined twice")
        defined.add(v)
        scope.add(v)

    def use(a: Atom, eqn_op: str):
        if isinstance(a, Lit):
            if not isinstance(a.type, ArrayType) or a.type.shape != ():
                raise VerifyError(f"{where}: literal {a!r} in {eqn_op} is not a scalar")
            return
        if not any(a in s for s in scopes):
            raise VerifyError(f"{where}: {a!r} used by {eqn_op} is not defined in scope")

    for p in region.params:
        define(p)
    for eqn in region.eqns:
        if eqn.op not in OPS:
            raise VerifyError(f"{where}: unknown op {eqn.op!r}")
        n_regions = OPS[eqn.op][0]
        if n_regions is not None and len(eqn.regions) != n_regions:
            raise VerifyError(f"{where}: {eqn.op} has {len(eqn.regions)} regions, expected {n_regions}")
        for a in eqn.args:
            use(a, eqn.op)
        for sub in eqn.regions:
            _verify_region(sub, scopes, defined, where)
        for v in eqn.outs:
            define(v)
    for o in region.outs:
        use(o, "yield")


def stacked(t: Type, n: int) -> Type:
    """The type of ``n`` values of type ``t`` stacked along a new leading axis."""
    if isinstance(t, ArrayType):
        return ArrayType(t.dtype, (n,) + t.shape)
    if isinstance(t, TraceType):
        return TraceType(tuple((a, stacked(ft, n)) for a, ft in t.fields),
                         None if t.retval is None else _stack_tree(t.retval, n))
    raise TypeError(f"cannot stack {t!r}")


def _stack_tree(tree, n):
    if isinstance(tree, tuple):
        return tuple(_stack_tree(t, n) for t in tree)
    if isinstance(tree, dict):
        return {k: _stack_tree(v, n) for k, v in tree.items()}
    return stacked(tree, n)


ZERO = Lit(0.0, REAL)
