"""Semantic checks on the AST, every problem reported at once.

Before lowering, :func:`check_program` walks each declaration with its
scope and collects diagnostics for: undefined names, duplicate declarations
or arguments, calls with the wrong number or names of arguments (to
declarations, builtin functions and distributions), unknown distributions,
keywords and estimators, estimators unsound for their distribution, an
address drawn twice, statements in the wrong kind of declaration (``factor``
outside ``gen``, ``param`` in ``fn``, ``expect`` in ``gen``), and a
``return`` that is not last; and the estimated-real typing of every
objective and ``fn`` (lower_estimates.py: ``log(expect ...)``, a product of
dependent estimates), so a program that passes cannot fail it when first
used. Problems that need types and static values (shapes, sizes) are found
by the lowering.

    >>> from ppl.compiler.parser import parse
    >>> check_program(parse("gen f() { x ~ normall(0.0, 1.0) }"), LIBRARY)  # doctest: +SKIP
    Traceback (most recent call last):
    CheckError: error: unknown distribution 'normall' ...
"""

from __future__ import annotations

from . import ast
from .diagnostics import CheckError, Diagnostic, Note, did_you_mean
from .library import Library, bind_arguments
from .combinators import COMBINATORS, combinator_arity_problem
from .lower import SPECIAL_BUILTINS, _assigned_names, estimator_names, unsound_estimator_message
from .lower_estimates import EstimateTyping
from .lower_expressions import literal_problem

CONSTANTS = {"pi", "inf"}
KEYWORD_TYPES = {"real", "int", "bool", "gen", "simplex", "corr_cholesky"}


def check_program(program: ast.Program, library: Library, extra_decls: tuple[ast.Decl, ...] = ()
                  ) -> None:
    """Raise :class:`CheckError` listing every problem found, or return None."""
    checker = _Checker(program, library, extra_decls)
    try:
        checker.run()
        checker.estimates()
    except RecursionError:
        first = program.decls[0].span if program.decls else None
        checker.errors.append(Diagnostic("the program nests too deeply to check", first,
                                         help="split deeply nested expressions or blocks into "
                                              "several statements"))
    if checker.errors:
        raise CheckError(sorted(checker.errors, key=lambda d: d.span.start if d.span else 0))


class _Checker:
    def __init__(self, program: ast.Program, library: Library, extra: tuple[ast.Decl, ...]):
        self.library = library
        self.program = program
        self.errors: list[Diagnostic] = []
        self.decls: dict[str, ast.Decl] = {d.name: d for d in extra}
        seen: dict[str, ast.Decl] = {}
        for d in program.decls:
            if d.name in seen:
                self.err(f"'{d.name}' is declared twice", d.name_span,
                         notes=(Note("first declared here", seen[d.name].name_span),))
            seen[d.name] = d
            self.decls[d.name] = d

    def err(self, message: str, span, help: str | None = None, notes=()) -> None:
        self.errors.append(Diagnostic(message, span, help, tuple(notes)))

    def run(self) -> None:
        for d in self.program.decls:
            self.decl = d
            self.bound_in_decl = set(_assigned_names(d.body))
            self.indices: set[str] = set()
            scope: set[str] = set()
            for a in d.args:
                if a.name in scope:
                    self.err(f"argument '{a.name}' appears twice", a.span)
                scope.add(a.name)
                if a.type is not None:
                    self.check_type(a.type)
                    if a.type.name == "corr_cholesky":
                        self.err("corr_cholesky[D] is the type of a parameter "
                                 "('param L: corr_cholesky[D]'), not of an argument",
                                 a.type.span, help="annotate the argument real[D, D]")
                    for dim in a.type.dims or ():
                        if isinstance(dim, str):
                            scope.add(dim)
            self.block(d.body, scope, in_expect=False, top=True, addresses={})
            if d.kind != "gen" and not (d.body.stmts and isinstance(d.body.stmts[-1], ast.Return)):
                self.err(f"{d.kind} '{d.name}' returns no value", d.name_span,
                         help="end its body with 'return ...'" + (
                             "; an objective returns the estimate to maximise"
                             if d.kind == "objective" else ""))

    def estimates(self) -> None:
        """The estimated-real typing of every objective and fn (with calls walked inline)."""
        typing = EstimateTyping(self.decls, self.library, frozenset(SPECIAL_BUILTINS))
        for d in self.program.decls:
            if d.kind in ("objective", "fn"):
                typing.check(d)
        self.errors.extend(typing.diagnostics())

    def check_type(self, t: ast.TypeAnn) -> None:
        if t.name not in KEYWORD_TYPES:
            self.err(f"unknown type '{t.name}'", t.span,
                     help=did_you_mean(t.name, KEYWORD_TYPES) or "types: real, int, bool, gen, simplex, "
                                                              "corr_cholesky")

    # ------------------------------------------------------------ statements

    def block(self, block: ast.Block, scope: set[str], in_expect: bool, top: bool,
              addresses: dict) -> None:
        for i, s in enumerate(block.stmts):
            if isinstance(s, ast.Return) and i != len(block.stmts) - 1:
                self.err("'return' must be the last statement of its block", s.span)
            self.stmt(s, scope, in_expect, top, addresses)

    def stmt(self, s, scope: set[str], in_expect: bool, top: bool, addresses: dict) -> None:
        kind = self.decl.kind
        if isinstance(s, ast.Assign):
            self.expr(s.value, scope, in_expect)
            scope.update(s.targets)
        elif isinstance(s, ast.Sample):
            self.sampled = s.value  # names the callee "distribution or generative function"
            self.expr(s.value, scope, in_expect)
            self.uncalled(s, scope)
            if kind == "fn" and not in_expect:
                self.err("a 'fn' is deterministic: random choices belong in a 'gen' "
                         "declaration or inside 'expect'", s.span)
            elif kind == "objective" and not in_expect:
                self.err("an objective draws random choices only inside 'expect { ... }'", s.span)
            address = s.address or s.target
            if "/" in address:
                self.err(f"address '{address}' may not contain '/', which separates nested "
                         "addresses", s.span)
            if kind == "gen":
                if address in addresses:
                    self.err(f"address '{address}' is drawn twice", s.span,
                             notes=(Note("first drawn here", addresses[address]),),
                             help="give each random choice its own name, or an explicit "
                                  "address with 'at \"...\"'")
                else:
                    addresses[address] = s.span
            self.estimator(s)
            if s.mask is not None:
                self.expr(s.mask, scope, in_expect)
                if kind != "gen":
                    self.err("a mask drops elements of a choice's log density, but a choice "
                             "drawn inside 'expect' is not scored", s.mask.span,
                             help="mask the choice in the generative function that draws it")
            scope.add(s.target)
        elif isinstance(s, ast.Factor):
            if kind != "gen":
                self.err("'factor' adds to a generative function's log density; it can only "
                         "be used inside a 'gen' declaration", s.span)
            self.expr(s.value, scope, in_expect)
        elif isinstance(s, ast.ParamDecl):
            if kind == "fn":
                self.err("a 'fn' cannot declare parameters; declare them in the 'gen' or "
                         "'objective' that uses it", s.span)
            elif not top:
                self.err("'param' must be declared at the top level of its declaration, not "
                         "inside a plate, loop, branch or expect", s.span)
            self.check_type(s.type)
            if s.init is not None:
                self.expr(s.init, scope, in_expect, param_init=True)
            scope.add(s.name)
        elif isinstance(s, (ast.Plate, ast.For)):
            self.expr(s.size, scope, in_expect)
            inner = set(scope) | {s.index}
            self.indices.add(s.index)
            self.block(s.body, inner, in_expect, False, addresses)
            scope.update(inner - {s.index})
        elif isinstance(s, ast.If):
            self.expr(s.cond, scope, in_expect)
            branch_scopes = []
            for blk in (s.then, s.orelse):
                if blk is None:
                    continue
                inner = set(scope)
                self.block(blk, inner, in_expect, False, dict(addresses))
                branch_scopes.append(inner)
            for inner in branch_scopes:
                for blk_addr in self._addresses_in(s):
                    addresses.setdefault(blk_addr[0], blk_addr[1])
            if len(branch_scopes) == 2:
                scope.update(branch_scopes[0] & branch_scopes[1])
        elif isinstance(s, ast.Return):
            self.expr(s.value, scope, in_expect)

    def uncalled(self, s: ast.Sample, scope: set[str]) -> None:
        """``x ~ normal`` without arguments (a gen-typed argument needs none)."""
        v = s.value
        if not isinstance(v, ast.Name) or v.id in scope:
            return
        if v.id in self.library.distributions:
            what, params = "the distribution", self.library.distributions[v.id].forms[0]
        elif v.id in self.decls and self.decls[v.id].kind == "gen":
            what, params = "the generative function", [a.name for a in self.decls[v.id].args]
        else:
            return
        self.err(f"{what} {v.id} must be called with its arguments after '~'", v.span,
                 help=f"write '{s.target} ~ {v.id}({', '.join(params)})'")

    def literal_arguments(self, dist, form: tuple, e: ast.Call) -> None:
        """Literal parameters outside their domain (``normal(m, 0.0)``), by the row's rule."""
        given = list(zip(form, e.args)) + [(k.name, k.value) for k in e.kwargs]
        for name, arg in given:
            value = _literal_number(arg)
            problem = literal_problem(dist, form, name, value) if value is not None else None
            if problem is not None:
                self.err(problem, arg.span)

    def _addresses_in(self, s: ast.If):
        out = []
        for blk in (s.then, s.orelse):
            for st in (blk.stmts if blk else ()):
                if isinstance(st, ast.Sample):
                    out.append((st.address or st.target, st.span))
        return out

    def estimator(self, s: ast.Sample) -> None:
        est = s.estimator
        if est is None:
            return
        names = estimator_names(self.library)
        if est.name not in names:
            self.err(f"unknown estimator '{est.name}'", est.span,
                     help=did_you_mean(est.name, names) or "estimators: " + ", ".join(names))
            return
        if est.args or (est.kwargs and est.name != "reinforce"):
            if est.name == "reinforce":
                self.err("estimator 'reinforce' takes its baseline by keyword", est.span,
                         help="write reinforce(baseline=...)")
            else:
                self.err(f"estimator '{est.name}' takes no arguments", est.span)
        value = s.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            dist = self.library.distributions.get(value.func.id)
            if dist is not None and est.name not in dist.estimators:
                self.err(unsound_estimator_message(est.name, value.func.id, s.address or s.target,
                                                   dist), est.span,
                         help="sound estimators here: " + ", ".join(sorted(dist.estimators)))

    # ------------------------------------------------------------ expressions

    def expr(self, e, scope: set[str], in_expect: bool, param_init: bool = False) -> None:
        if isinstance(e, ast.Name):
            self.name(e, scope, param_init)
        elif isinstance(e, ast.Literal):
            pass
        elif isinstance(e, ast.Unary):
            self.expr(e.operand, scope, in_expect)
        elif isinstance(e, ast.Binary):
            self.expr(e.left, scope, in_expect)
            self.expr(e.right, scope, in_expect)
        elif isinstance(e, ast.Condition):
            self.expr(e.target, scope, in_expect)
            self.expr(e.observations, scope, in_expect)
        elif isinstance(e, ast.Call):
            self.call(e, scope, in_expect, param_init)
        elif isinstance(e, ast.Index):
            self.expr(e.value, scope, in_expect)
            for i in e.indices:
                if isinstance(i, ast.Slice):
                    for part in (i.start, i.stop):
                        if part is not None:
                            self.expr(part, scope, in_expect)
                else:
                    self.expr(i, scope, in_expect)
        elif isinstance(e, ast.Field):
            self.expr(e.value, scope, in_expect)
        elif isinstance(e, (ast.TupleLit, ast.ArrayLit)):
            for x in e.items:
                self.expr(x, scope, in_expect)
        elif isinstance(e, ast.RecordLit):
            fields: set[str] = set()
            for k, x in e.fields:
                if k in fields:
                    self.err(f"field '{k}' appears twice in this record", e.span)
                fields.add(k)
                self.expr(x, scope, in_expect)
        elif isinstance(e, ast.Expect):
            if self.decl.kind == "gen":
                self.err("'expect' belongs in an objective (or a fn it calls), not in a "
                         "generative function", e.span)
            self.block(e.body, set(scope), True, False, {})

    def known(self, name: str, scope: set[str]) -> bool:
        lib = self.library
        return (name in scope or name in self.decls or name in lib.functions
                or name in lib.distributions or name in SPECIAL_BUILTINS or name in CONSTANTS)

    def name(self, e: ast.Name, scope: set[str], param_init: bool = False) -> None:
        if self.known(e.id, scope):
            return
        if e.id in self.library.initializers:
            if not param_init:
                self.err(f"the initialiser {e.id}() can only initialise a 'param'", e.span,
                         help=f"use it as a parameter's initial value: 'param w: real[n] = "
                              f"{e.id}()'")
            return
        candidates = (list(scope) + list(self.decls) + list(self.library.functions)
                      + list(self.library.distributions))
        help_ = did_you_mean(e.id, candidates)
        if e.id in self.indices:
            help_ = f"'{e.id}' is the index of a plate or loop: it is visible only inside its block"
        elif e.id in self.bound_in_decl:
            help_ = f"'{e.id}' is bound in {self.decl.name}, but not before this use"
        self.err(f"undefined name '{e.id}'", e.span, help=help_)

    def call(self, e: ast.Call, scope: set[str], in_expect: bool, param_init: bool) -> None:
        for a in e.args:
            self.expr(a, scope, in_expect)
        seen_keywords: set[str] = set()
        for k in e.kwargs:
            self.expr(k.value, scope, in_expect)
            if k.name in seen_keywords:
                self.err(f"argument '{k.name}' is given twice", k.span)
                return
            seen_keywords.add(k.name)
        if not isinstance(e.func, ast.Name):
            self.expr(e.func, scope, in_expect)
            return
        name = e.func.id
        if name in scope:
            return
        lib = self.library
        kwnames = [k.name for k in e.kwargs]
        if name in self.decls:
            d = self.decls[name]
            argnames = [a.name for a in d.args]
            if len(e.args) > len(argnames):
                self.err(f"{name}() takes {len(argnames)} argument{'s' if len(argnames) != 1 else ''}"
                         f" but {len(e.args)} were given", e.span)
            for k in e.kwargs:
                if k.name not in argnames:
                    self.err(f"{name}() has no argument '{k.name}'", k.span,
                             help=did_you_mean(k.name, argnames)
                             or f"{name}() takes {', '.join(argnames) or 'no arguments'}")
            given = set(argnames[:len(e.args)]) | set(kwnames)
            missing = [a for a in argnames if a not in given]
            unknown = [k for k in kwnames if k not in argnames]
            if missing and len(e.args) <= len(argnames) and not unknown:
                self.err(f"{name}() is missing argument{'s' if len(missing) > 1 else ''} "
                         + ", ".join(f"'{m}'" for m in missing), e.span)
            if self.decl.kind == "gen" and d.kind == "objective":
                self.err(f"a generative function cannot call the objective '{name}'", e.span)
        elif name in lib.distributions:
            dist = lib.distributions[name]
            n = len(e.args) + len(e.kwargs)
            fits = [f for f in dist.forms if len(f) == n and set(kwnames) == set(f[len(e.args):])]
            if fits:
                self.literal_arguments(dist, fits[0], e)
            if not fits:
                names = {p for f in dist.forms for p in f}
                bad = [k for k in e.kwargs if k.name not in names]
                forms = " or ".join(f"{name}({', '.join(f)})" for f in dist.forms)
                if bad:
                    self.err(f"{name}() has no parameter '{bad[0].name}'", bad[0].span,
                             help=did_you_mean(bad[0].name, names) or f"use {forms}")
                else:
                    self.err(f"{name}() takes {len(dist.forms[0])} parameter"
                             f"{'s' if len(dist.forms[0]) != 1 else ''}, got {n}", e.span,
                             help=f"use {forms}")
        elif name in lib.functions:
            try:
                bind_arguments(name, lib.functions[name].params, list(e.args),
                               {k.name: k.value for k in e.kwargs})
            except ValueError as ex:
                self.err(str(ex), e.span)
        elif name in COMBINATORS:
            problem = combinator_arity_problem(name, len(e.args), kwnames)
            if problem:
                self.err(problem, e.span)
        elif name in SPECIAL_BUILTINS:
            want = 2 if name == "density" else 1
            if e.kwargs:
                self.err(f"{name}() takes no keyword arguments", e.kwargs[0].span)
            elif len(e.args) != want:
                self.err(f"{name}() takes {want} argument{'s' if want > 1 else ''} but "
                         f"{len(e.args)} {'was' if len(e.args) == 1 else 'were'} given", e.span)
            scores_a_distribution = (name == "density" and e.args
                                     and isinstance(e.args[0], ast.Call)
                                     and isinstance(e.args[0].func, ast.Name)
                                     and e.args[0].func.id in lib.distributions)
            if (name in ("sim", "rsim", "density") and self.decl.kind == "gen"
                    and not scores_a_distribution):
                self.err(f"{name}() belongs in objectives; a generative function draws with '~'",
                         e.span)
            if name == "detach" and self.decl.kind == "gen":
                self.err("detach() belongs in objectives, where it holds a generative "
                         "function's parameters constant", e.span)
        elif name in lib.initializers:
            if not param_init:
                self.err(f"the initialiser {name}() can only initialise a 'param'", e.func.span,
                         help=f"use it as a parameter's initial value: 'param w: real[n] = "
                              f"{name}(...)'")
        else:
            candidates = (list(scope) + list(self.decls) + list(lib.functions)
                          + list(lib.distributions))
            if name in CONSTANTS:
                self.err(f"'{name}' is a constant, not a function", e.func.span)
            else:
                what = ("distribution or generative function" if e is getattr(self, "sampled", None)
                        else "function")
                self.err(f"unknown {what} '{name}'", e.func.span,
                         help=did_you_mean(name, candidates))


def _literal_number(e) -> int | float | bool | None:
    """The number a literal argument writes (``2.0``, ``-1``), or None."""
    if isinstance(e, ast.Unary) and e.op == "neg":
        inner = _literal_number(e.operand)
        return -inner if isinstance(inner, (int, float)) and not isinstance(inner, bool) else None
    if isinstance(e, ast.Literal) and isinstance(e.value, (int, float, bool)):
        return e.value
    return None
