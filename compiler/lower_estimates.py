"""The estimated-real typing: what may be done with the value of an ``expect``.

An ``expect { ... }`` is an *estimated real*: one unbiased sample of an
expectation, not its value. It stays unbiased under sums, differences,
scaling by values that are not estimates, and products of *independent*
estimates; anything else is biased, since E[f(X)] ≠ f(E[X]). Every value
an objective computes therefore carries the set of ``expect`` s whose
estimates it depends on (its *sources*), and :func:`combine` is the rule
table saying which operations keep it unbiased.

The same rules run twice: :class:`EstimateTyping` walks the syntax tree of
every objective and ``fn`` when a program is checked (so ``ppl check``
rejects what could not compile), and the lowering applies them to the IR it
emits (lower_expressions.py), as a second line of defence on the
specialised program. Both carry sources through loops (to a fixed point of
the carried values), plates (a plate's outputs depend on what its body's
do), traced branches (a merged value depends on both branches) and calls.

    >>> combine("add", [frozenset({1}), frozenset()])
    frozenset({1})
    >>> combine("mul", [frozenset({1}), frozenset({2})])  # independent estimates
    frozenset({1, 2})
    >>> combine("log", [frozenset({1})])  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    NotUnbiased: log() of an expectation has no unbiased estimator
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from . import ast
from .diagnostics import Diagnostic, Note
from .library import Library, bind_arguments

Sources = frozenset
EMPTY: Sources = frozenset()

# Each binary operator of the source and the library function it lowers to (lower_expressions.py).
BINARY_FUNCTIONS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floor_divide",
                    "%": "mod", "@": "matmul",
                    "**": "pow", "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt",
                    ">=": "ge", "and": "logical_and", "or": "logical_or"}

_HELP = ("objectives may add, subtract and scale expectations, and multiply independent ones; "
         "put {name}(...) inside the expect block instead")


class NotUnbiased(Exception):
    """An operation on estimated reals with no unbiased estimator: ``(message, help)``."""

    def __init__(self, message: str, help: str):
        super().__init__(message)
        self.message = message
        self.help = help


def _linear(name: str, sources: Sequence[Sources]) -> Sources:
    return EMPTY.union(*sources)


def _product(name: str, sources: Sequence[Sources]) -> Sources:
    if all(sources) and sources[0] & sources[1]:
        raise NotUnbiased("this multiplies an estimate of an expectation by itself, which is "
                          "biased: E[X]·E[X] is not E[X·X]",
                          "multiply two separate expect { ... } blocks (independent estimates), "
                          "or move the product inside one expect")
    return EMPTY.union(*sources)


def _ratio(name: str, sources: Sequence[Sources]) -> Sources:
    if sources[1]:
        raise NotUnbiased("dividing by an expectation has no unbiased estimator: div(E[X]) is "
                          "not E[div(X)]", _HELP.format(name=name))
    return sources[0]


def _select(name: str, sources: Sequence[Sources]) -> Sources:
    if sources[0]:
        return _nonlinear(name, sources)
    return EMPTY.union(*sources[1:])


def _nonlinear(name: str, sources: Sequence[Sources]) -> Sources:
    raise NotUnbiased(f"{name}() of an expectation has no unbiased estimator: {name}(E[X]) is "
                      f"not E[{name}(X)]", _HELP.format(name=name))


# One row per function that keeps estimates unbiased (the arguments' sources in
# the order of the function's parameters); every other function rejects them.
RULES: dict[str, Callable[[str, Sequence[Sources]], Sources]] = {
    **{name: _linear for name in (
        "add", "sub", "neg", "sum", "mean", "stack", "concat", "reshape", "broadcast_to",
        "transpose", "squeeze", "expand_dims", "float", "stop_gradient", "identity", "index")},
    "mul": _product, "matmul": _product, "dot": _product, "outer": _product,
    "div": _ratio,
    "where": _select,  # where(c, a, b) with c not an estimate selects estimates
}


def combine(name: str, sources: Sequence[Sources]) -> Sources:
    """The sources of ``name(args)`` given its arguments'; raise :class:`NotUnbiased`."""
    if not any(sources):
        return EMPTY
    return RULES.get(name, _nonlinear)(name, list(sources))


def as_input(what: str, sources: Sources) -> None:
    """An estimate may not parameterise a random choice (``normal(e, 1.0)``, ``model(e)``,
    ``g | {y: e}``): the expectation over that choice is non-linear in it."""
    if sources:
        raise NotUnbiased(f"an estimate of an expectation cannot be {what}: a random "
                          "choice's distribution is not linear in it, so what is computed "
                          "from the choice would be biased",
                          "compute what the choice needs inside the same expect block")


def flat(value: Any) -> Sources:
    """All the sources of an abstract value (a set, or a tuple or record of them)."""
    if isinstance(value, frozenset):
        return value
    if isinstance(value, tuple):
        return EMPTY.union(*(flat(v) for v in value))
    if isinstance(value, dict):
        return EMPTY.union(*(flat(v) for v in value.values()))
    return EMPTY


# ---------------------------------------------------------------- on the syntax tree


class EstimateTyping:
    """The estimated-real typing of a program's syntax tree (see the module docstring).

    Each declaration is walked with its arguments taken as plain values;
    calls to ``fn`` s and objectives are walked again at each call with the
    arguments' sources (like the inlining the lowering does), so an estimate
    passed to ``fn f(v) { return log(v) }`` is caught inside ``f``. An
    ``expect`` gets a new source per walk; a loop body is walked until what
    its carried values depend on stops growing, starting the sources of its
    ``expect`` s again at each walk, so each walk names them alike.
    """

    def __init__(self, decls: dict[str, ast.Decl], library: Library,
                 special: frozenset[str] = frozenset()):
        self.decls = decls
        self.library = library
        self.special = special
        self.errors: dict[tuple, Diagnostic] = {}
        self.count = 0
        self.stack: list[str] = []
        self.calls: list[tuple[str, Any, int]] = []  # (callee, call span, last source before)

    def check(self, decl: ast.Decl) -> None:
        self.stack = [decl.name]
        env = {a.name: EMPTY for a in decl.args}
        self.block(decl.body, env)

    def diagnostics(self) -> list[Diagnostic]:
        return list(self.errors.values())

    def apply(self, name: str, sources: Sequence[Sources], span) -> Sources:
        try:
            return combine(name, sources)
        except NotUnbiased as ex:
            self.report(ex, span, EMPTY.union(*sources))
            return EMPTY  # reported once, not again by each use of the result

    def input(self, what: str, value: Any, span) -> None:
        try:
            as_input(what, flat(value))
        except NotUnbiased as ex:
            self.report(ex, span, flat(value))

    def report(self, ex: NotUnbiased, span, sources: Sources) -> None:
        """Record a rejection once; inside a call, note where the estimate came in."""
        notes = []
        for callee, call_span, first in reversed(self.calls):
            if any(t <= first for t in sources):  # an estimate made before this call
                notes.append(Note(f"the estimate is passed to {callee}() here", call_span))
            else:
                break
        key = (ex.message, span.start if span else None, span.source.name if span else None)
        self.errors.setdefault(key, Diagnostic(ex.message, span, ex.help, tuple(notes)))

    # ------------------------------------------------------------ statements

    def block(self, block: ast.Block, env: dict) -> Any:
        for s in block.stmts:
            if isinstance(s, ast.Return):
                return self.expr(s.value, env)
            self.stmt(s, env)
        return None

    def stmt(self, s, env: dict) -> None:
        if isinstance(s, ast.Assign):
            value = self.expr(s.value, env)
            if s.destructure:
                items = (value if isinstance(value, tuple) and len(value) == len(s.targets)
                         else (flat(value),) * len(s.targets))
                env.update(zip(s.targets, items))
            else:
                env[s.targets[0]] = value
        elif isinstance(s, ast.Sample):
            self.expr(s.value, env)
            if s.estimator is not None:
                for k in s.estimator.kwargs:
                    self.expr(k.value, env)
            env[s.target] = EMPTY
        elif isinstance(s, ast.Factor):
            self.expr(s.value, env)
        elif isinstance(s, ast.ParamDecl):
            if s.init is not None:
                self.expr(s.init, env)
            env[s.name] = EMPTY
        elif isinstance(s, ast.Plate):
            self.expr(s.size, env)
            inner = dict(env)
            inner[s.index] = EMPTY
            self.block(s.body, inner)
            self.export(env, inner, s.index, {})
        elif isinstance(s, ast.For):
            self.loop(s, env)
        elif isinstance(s, ast.If):
            self.expr(s.cond, env)
            branches = []
            for blk in (s.then, s.orelse):
                inner = dict(env)
                if blk is not None:
                    self.block(blk, inner)
                branches.append(inner)
            for name in dict.fromkeys([*branches[0], *branches[1]]):
                values = [br[name] for br in branches if name in br]
                env[name] = values[0] if len(values) == 1 else _merge(values[0], values[1])

    def export(self, env: dict, inner: dict, index: str, carried: dict) -> None:
        """Bind in ``env`` what a plate or loop body bound (stacked, or carried)."""
        for name, v in inner.items():
            if name != index and (name not in env or env[name] is not v):
                env[name] = flat(v) | flat(carried.get(name, EMPTY))

    def loop(self, s: ast.For, env: dict) -> None:
        self.expr(s.size, env)
        assumed = dict(env)
        start = self.count
        for _ in range(64):  # each repeat adds a source to a carried value
            self.count = start
            inner = dict(assumed)
            inner[s.index] = EMPTY
            self.block(s.body, inner)
            grown = False
            for name, v in inner.items():
                if name in assumed and name != s.index and not flat(v) <= flat(assumed[name]):
                    assumed[name] = flat(assumed[name]) | flat(v)
                    grown = True
            if not grown:
                break
        else:  # each repeat adds an expect to a carried value's sources: cannot happen
            self.errors.setdefault(("settle", id(s)), Diagnostic(
                "what this loop's carried values estimate does not settle", s.span))
        self.export(env, inner, s.index, assumed)

    # ------------------------------------------------------------ expressions

    def expr(self, e, env: dict) -> Any:
        if isinstance(e, ast.Name):
            return env.get(e.id, EMPTY)
        if isinstance(e, ast.Unary):
            v = self.expr(e.operand, env)
            return self.apply("neg" if e.op == "neg" else "logical_not", [flat(v)], e.span)
        if isinstance(e, ast.Binary):
            left, right = self.expr(e.left, env), self.expr(e.right, env)
            return self.apply(BINARY_FUNCTIONS[e.op], [flat(left), flat(right)], e.span)
        if isinstance(e, ast.Condition):
            self.expr(e.target, env)
            self.input("an observation", self.expr(e.observations, env), e.observations.span)
            return EMPTY
        if isinstance(e, ast.Call):
            return self.call(e, env)
        if isinstance(e, ast.Index):
            base = self.expr(e.value, env)
            for i in e.indices:
                for part in ((i.start, i.stop) if isinstance(i, ast.Slice) else (i,)):
                    if part is not None:
                        self.expr(part, env)
            if isinstance(base, tuple) and len(e.indices) == 1 \
                    and isinstance(e.indices[0], ast.Literal) \
                    and isinstance(e.indices[0].value, int) \
                    and -len(base) <= e.indices[0].value < len(base):
                return base[e.indices[0].value]
            if isinstance(base, dict) and len(e.indices) == 1 \
                    and isinstance(e.indices[0], ast.Literal) and e.indices[0].value in base:
                return base[e.indices[0].value]
            return flat(base)
        if isinstance(e, ast.Field):
            base = self.expr(e.value, env)
            return base[e.name] if isinstance(base, dict) and e.name in base else flat(base)
        if isinstance(e, ast.TupleLit):
            return tuple(self.expr(x, env) for x in e.items)
        if isinstance(e, ast.ArrayLit):
            return self.apply("stack", [flat(self.expr(x, env)) for x in e.items], e.span)
        if isinstance(e, ast.RecordLit):
            return {k: self.expr(x, env) for k, x in e.fields}
        if isinstance(e, ast.Expect):
            inner = dict(env)
            value = self.block(e.body, inner)
            self.count += 1
            return frozenset({self.count}) | flat(value)
        return EMPTY  # literals

    def call(self, e: ast.Call, env: dict) -> Any:
        args = [self.expr(a, env) for a in e.args]
        kwargs = {k.name: self.expr(k.value, env) for k in e.kwargs}
        if not isinstance(e.func, ast.Name):
            self.expr(e.func, env)
            return EMPTY
        name = e.func.id
        if name in env or name in self.special:
            return (EMPTY, EMPTY) if name in ("sim", "rsim") else EMPTY
        decl = self.decls.get(name)
        if name in self.library.distributions or (decl is not None and decl.kind == "gen"):
            what = ("a distribution's parameter" if decl is None
                    else "an argument of a generative function")
            for a, node in zip([*args, *kwargs.values()], [*e.args, *(k.value for k in e.kwargs)]):
                self.input(what, a, node.span)
            return EMPTY
        if decl is not None:
            if name in self.stack:
                return EMPTY
            inner = {a.name: EMPTY for a in decl.args}
            inner.update(zip([a.name for a in decl.args], args))
            inner.update({k: v for k, v in kwargs.items() if k in inner})
            self.stack.append(name)
            self.calls.append((name, e.span, self.count))
            try:
                return self.block(decl.body, inner)
            finally:
                self.stack.pop()
                self.calls.pop()
        f = self.library.functions.get(name)
        if f is None:
            return self.apply(name, [flat(a) for a in [*args, *kwargs.values()]], e.span)
        try:
            bound = bind_arguments(name, f.params, args, kwargs)
        except ValueError:
            return EMPTY  # the checker reports the call
        sources = []
        for spec in f.params:
            v = bound[spec.name]
            sources.append(EMPTY.union(*(flat(x) for x in v)) if spec.variadic else flat(v))
        return self.apply(name, sources, e.span)


def _merge(a: Any, b: Any) -> Any:
    """The value of a name bound in both branches of an ``if``."""
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return tuple(_merge(x, y) for x, y in zip(a, b))
    return flat(a) | flat(b)
