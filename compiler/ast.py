"""The abstract syntax tree: frozen dataclasses, each with a source span.

The parser (parser.py) builds these; the checker (check.py) and the lowering
(lower.py) read them. Nodes are plain data with no behaviour, so every pass
is a function that dispatches on the node class.

    >>> from ppl.compiler.parser import parse
    >>> prog = parse("gen f(n: int) { x ~ normal(0.0, 1.0) }")
    >>> type(prog.decls[0].body.stmts[0]).__name__
    'Sample'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .diagnostics import Span


# ---------------------------------------------------------------- types


@dataclass(frozen=True)
class TypeAnn:
    """An annotation: ``real``, ``int``, ``gen``, ``real<lower=0>[N, 3]``, ``simplex[K]``."""

    name: str
    constraint: tuple[tuple[str, float], ...]
    dims: tuple[Union[int, str], ...] | None
    span: Span


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Literal:
    value: Union[int, float, bool, str]
    span: Span


@dataclass(frozen=True)
class Unary:
    op: str  # "neg" | "not"
    operand: "Expr"
    span: Span


@dataclass(frozen=True)
class Binary:
    op: str  # "+", "-", "*", "/", "//", "%", "@", "**", "==", ..., "and", "or"
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True)
class Condition:
    """``g | {y: data}``: a generative function conditioned on observations."""

    target: "Expr"
    observations: "Expr"
    span: Span


@dataclass(frozen=True)
class Keyword:
    name: str
    value: "Expr"
    span: Span


@dataclass(frozen=True)
class Call:
    func: "Expr"
    args: tuple["Expr", ...]
    kwargs: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True)
class Slice:
    start: "Expr | None"
    stop: "Expr | None"
    span: Span


@dataclass(frozen=True)
class NewAxis:
    """``None`` as an index (``x[:, None]``): a new axis of size 1, as NumPy's."""

    span: Span


@dataclass(frozen=True)
class Index:
    value: "Expr"
    indices: tuple["Expr | Slice | NewAxis", ...]
    span: Span


@dataclass(frozen=True)
class Field:
    value: "Expr"
    name: str
    span: Span


@dataclass(frozen=True)
class TupleLit:
    items: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class ArrayLit:
    items: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class RecordLit:
    fields: tuple[tuple[str, "Expr"], ...]
    span: Span


@dataclass(frozen=True)
class Expect:
    """``expect { ... }``: the expected value of the block's return value."""

    body: "Block"
    span: Span


Expr = Union[Name, Literal, Unary, Binary, Condition, Call, Index, Field,
             TupleLit, ArrayLit, RecordLit, Expect]


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class Estimator:
    """``with reinforce(baseline=0.5)``: a per-site gradient estimator."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span


@dataclass(frozen=True)
class Sample:
    """``x ~ d(args)``: a random choice at an address (the binder, or ``at "..."``).

    ``mask`` (``x ~ d(args) if m``): a bool array broadcast over the choice's
    elements; elements where it is false are drawn but add nothing to the log density.
    ``shares`` (``y ~ g(args) shares x``): a call of a generative function with the
    parameters of the call at ``x``.
    """

    target: str
    value: Expr
    address: str | None
    estimator: Estimator | None
    span: Span
    target_span: Span
    mask: Expr | None = None
    # ``shares h1``: a generative function's call that uses the parameters of the call at h1
    shares: str | None = None
    shares_span: Span | None = None


@dataclass(frozen=True)
class Assign:
    targets: tuple[str, ...]
    destructure: bool  # (a, b) = ... or a, b = ...
    value: Expr
    span: Span


@dataclass(frozen=True)
class Plate:
    index: str
    size: Expr
    body: "Block"
    span: Span


@dataclass(frozen=True)
class For:
    index: str
    size: Expr
    body: "Block"
    span: Span


@dataclass(frozen=True)
class If:
    cond: Expr
    then: "Block"
    orelse: "Block | None"
    span: Span


@dataclass(frozen=True)
class Factor:
    value: Expr
    span: Span


@dataclass(frozen=True)
class ParamDecl:
    name: str
    type: TypeAnn
    init: Expr | None
    span: Span


@dataclass(frozen=True)
class Return:
    value: Expr
    span: Span


Stmt = Union[Sample, Assign, Plate, For, If, Factor, ParamDecl, Return]


@dataclass(frozen=True)
class Block:
    stmts: tuple[Stmt, ...]
    span: Span


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Arg:
    name: str
    type: TypeAnn | None
    span: Span


@dataclass(frozen=True)
class Decl:
    """A ``gen``, ``fn`` or ``objective`` declaration."""

    kind: str  # "gen" | "fn" | "objective"
    name: str
    args: tuple[Arg, ...]
    body: Block
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Program:
    decls: tuple[Decl, ...]
    source_name: str
