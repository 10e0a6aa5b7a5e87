"""Lowering: trace the AST into IR, specialising on static arguments.

The lowering walks a declaration's body with an environment in which static
values (sizes, generative functions, distributions, tuples and records) are
Python values and dynamic values are IR atoms (values.py), and emits typed
IR equations into a region :class:`Builder`. Like ``jax.jit``, a generative
function is lowered once per call signature (its static arguments and the
types of its dynamic ones) and cached under a specialised name such as
``coin(n=10)``. Deterministic ``fn`` s and objectives called from other code
are inlined as they are lowered; generative functions become ``call``,
``sim`` and ``density`` equations that the passes inline and expand.

    >>> from ppl.compiler.parser import parse
    >>> low = Lowerer(parse("gen f(n: int) { plate i in n { x ~ normal(0.0, 1.0) } }"), LIB)
    ... # doctest: +SKIP
    >>> low.specialise(low.gen_value("f", [3], {})).name  # doctest: +SKIP
    'f(n=3)'

Invariants: every emitted variable has a concrete type; plates never unroll
(their body is lowered once, with the index as a traced int); static values
never reach the IR except as scalar literals.

This module holds the declarations and statements (``~``, ``=``, ``param``,
``plate``, ``for``, ``if``, ``factor``); lower_expressions.py the expressions;
builder.py the region builder.
"""

from __future__ import annotations

from typing import Any

from . import ast
from .diagnostics import Note, Span, did_you_mean, error
from .ir import Function, Lit, ParamInfo, Region, Var, stacked, walk
from .library import LearnedParameter, Library, ParamSpec, bind_arguments
from .types import INT, REAL, ArrayType, tree_leaves, tree_unflatten
from .values import (DistValue, GenValue, Ref, describe, is_generative, is_static_number, literal,
                     type_of)

from .builder import Builder
from .lower_expressions import SPECIAL_BUILTINS, ExpressionLowering  # noqa: F401 (re-exported)
from .passes.estimators import unsound_estimator_message  # noqa: F401 (re-exported)



def estimator_names(library: Library) -> tuple[str, ...]:
    """The estimators a ``with`` may name: the library's estimator registry, in its order."""
    return tuple(library.estimators)


class Lowerer(ExpressionLowering):
    """Lowers declarations of one program (plus the standard library's)."""

    def __init__(self, program: ast.Program, library: Library, externs: dict[str, Any] | None = None,
                 extra_decls: tuple[ast.Decl, ...] = ()):
        self.library = library
        self.decls: dict[str, ast.Decl] = {d.name: d for d in extra_decls}
        self.decls.update({d.name: d for d in program.decls})
        self.externs = dict(externs or {})
        self.functions: dict[str, Function] = {}
        self.params: dict[str, ParamInfo] = {}
        self.scope = ""  # the path the parameters being lowered are named under (specialise)
        self.scope_free: set[str] = set()  # functions whose parameters do not depend on it
        self.calls_here: dict[str, ast.Sample] = {}  # address -> call, in the body being lowered
        self.stack: list[str] = []
        self.estimated: dict[Var, frozenset] = {}  # var -> the expects it estimates
        # While an entry of a minibatch fit is lowered (set by its caller): exact sums keep
        # each plate element's log density inside its plate, where N/B scaling finds it.
        self.minibatching = False
        self.expect_count = 0  # numbers the expects, the sources of estimates
        # plate and loop indices (and static shifts of them) -> (lo, hi, name, size span, kind, size)
        self.index_ranges: dict[Var, tuple] = {}

    # ------------------------------------------------------------ entry points

    def gen_value(self, name: str, args: list, kwargs: dict, span: Span | None = None) -> GenValue:
        """Apply the generative function ``name`` to argument values (static or atoms)."""
        decl = self.decls[name]
        bound = self.bind_decl_args(decl, args, kwargs, span)
        static = tuple((k, v) for k, v in bound.items() if not isinstance(v, (Var, Lit)))
        dynamic = tuple((k, v) for k, v in bound.items() if isinstance(v, (Var, Lit)))
        return GenValue(name, static, dynamic, (), span)

    def specialise(self, gv: GenValue, scope: str | None = None) -> Function:
        """The IR function for ``gv``'s declaration at its signature (cached).

        ``scope`` is the path its parameters are named under (see :meth:`param`):
        None at the top level (the declaration's own name), ``"enc.h1"`` for a
        call at address ``h1`` from a function whose scope is ``enc``. A function
        whose parameters (or its callees') do not depend on the scope is lowered
        once and shared; one that has scoped parameters is lowered once per scope,
        named ``key@scope``.
        """
        decl = self.decls[gv.decl]
        key = gv.label() + "".join(f"[{k}:{v.type!r}]" for k, v in gv.dynamic
                                   if isinstance(v, Var))
        if key in self.functions and (scope is None or key in self.scope_free):
            return self.functions[key]
        if scope is not None and f"{key}@{scope}" in self.functions:
            return self.functions[f"{key}@{scope}"]
        if gv.decl in self.stack:
            raise error(f"'{gv.decl}' calls itself; recursion is not supported "
                        "(use a plate or a for loop)", gv.span or decl.name_span)
        own_scope = gv.decl if scope is None else scope
        self.stack.append(gv.decl)
        try:
            b = Builder("function")
            env: dict[str, Any] = dict(gv.static)
            for k, v in gv.dynamic:
                p = Var(v.type, k)
                b.params.append(p)
                b.defined.add(p)
                env[k] = p
            ret = self.lower_body(decl, env, b, own_scope)
        finally:
            self.stack.pop()
        leaves = [self.as_atom(x, decl.span) for x in tree_leaves(ret)] if ret is not None else []
        region = Region(b.params, b.eqns, leaves)
        free = not _reaches_scope(region, own_scope)
        name = key if scope is None or free else f"{key}@{scope}"
        if name in self.functions:  # lowered at the top level before, and scope-free after all
            return self.functions[name]
        fn = Function(name, region, decl.kind, decl.span)
        fn.retval_tree = _type_tree(ret)  # type: ignore[attr-defined]
        self.functions[name] = fn
        if free:
            self.scope_free.add(key)
        return fn

    def lower_body(self, decl: ast.Decl, env: dict, b: Builder, scope: str | None = None) -> Any:
        """Lower ``decl`` 's body; its parameters are named under ``scope`` (a gen's,
        given by :meth:`specialise`), else the declaration's name (an objective's),
        while a ``fn``, which has none, keeps its caller's."""
        saved = (getattr(self, "current_decl", None), self.scope, self.calls_here)
        self.current_decl = decl
        self.scope = scope if scope is not None else self.scope if decl.kind == "fn" else decl.name
        self.calls_here = {} if decl.kind != "fn" else self.calls_here
        try:
            return self.block(decl.body, env, b, decl)
        finally:
            self.current_decl, self.scope, self.calls_here = saved

    def bind_decl_args(self, decl: ast.Decl, args: list, kwargs: dict, span: Span | None) -> dict:
        names = [a.name for a in decl.args]
        if len(args) > len(names):
            raise error(f"{decl.name}() takes {len(names)} argument{'s' if len(names) != 1 else ''} "
                        f"but {len(args)} were given", span)
        bound = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise error(f"{decl.name}() has no argument '{k}'", span,
                            help=did_you_mean(k, names))
            if k in bound:
                raise error(f"{decl.name}() got argument '{k}' twice", span)
            bound[k] = v
        missing = [n for n in names if n not in bound]
        if missing:
            raise error(f"{decl.name}() is missing argument{'s' if len(missing) > 1 else ''} "
                        + ", ".join(f"'{m}'" for m in missing), span)
        shape_vars: dict[str, int] = {}
        for arg in decl.args:
            bound[arg.name] = self.check_arg(decl, arg, bound[arg.name], shape_vars, span)
        bound.update({k: v for k, v in shape_vars.items() if k not in bound})
        return bound

    def check_arg(self, decl: ast.Decl, arg: ast.Arg, value: Any, shape_vars: dict, span) -> Any:
        t = arg.type
        where = f"argument '{arg.name}' of {decl.name}"
        if t is None:
            return value
        if t.name in ("int", "bool") and not t.dims:
            want = int if t.name == "int" else bool
            if isinstance(value, (Var, Lit)) and not isinstance(value, Lit):
                raise error(f"{where} must be a static {t.name} (a value known when the program "
                            f"is compiled), but it is traced ({describe(value)})", span or arg.span,
                            help="sizes and flags that change the program's structure must be "
                                 "Python ints or bools, not arrays")
            if isinstance(value, Lit):
                value = value.value
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise error(f"{where} must be {'an int' if want is int else 'a bool'}, "
                            f"got {describe(value)}", span or arg.span)
            return value
        if t.name == "gen":
            if not is_generative(value):
                raise error(f"{where} must be a generative function, got {describe(value)}",
                            span or arg.span)
            return value
        if t.name in ("real", "int", "bool", "simplex"):
            if is_static_number(value):
                value = literal(float(value) if t.name == "real" else value)
            if not isinstance(value, (Var, Lit)) or not isinstance(value.type, ArrayType):
                raise error(f"{where} must be an array of type {t.name}, got {describe(value)}",
                            span or arg.span)
            dims = t.dims or ()
            if t.dims is not None and len(dims) != value.type.ndim:
                raise error(f"{where} must have {len(dims)} dimension{'s' if len(dims) != 1 else ''}"
                            f" ({t.name}[{', '.join(map(str, dims))}]), got {value.type!r}",
                            span or arg.span)
            for d, actual in zip(dims, value.type.shape):
                if isinstance(d, int) and d != actual:
                    raise error(f"{where} must have shape [{', '.join(map(str, dims))}], "
                                f"got {value.type!r}", span or arg.span)
                if isinstance(d, str):
                    if d in shape_vars and shape_vars[d] != actual:
                        raise error(f"{where}: dimension {d} is {actual} here but "
                                    f"{shape_vars[d]} elsewhere", span or arg.span)
                    shape_vars[d] = actual
            return value
        return value

    # ------------------------------------------------------------ statements

    def block(self, block: ast.Block, env: dict, b: Builder, decl: ast.Decl) -> Any:
        result = None
        for i, stmt in enumerate(block.stmts):
            if isinstance(stmt, ast.Return):
                if i != len(block.stmts) - 1:
                    raise error("'return' must be the last statement of its block", stmt.span)
                return self.expr(stmt.value, env, b)
            self.stmt(stmt, env, b, decl)
        return result

    def stmt(self, s, env: dict, b: Builder, decl: ast.Decl) -> None:
        if isinstance(s, ast.Assign):
            value = self.expr(s.value, env, b)
            if s.destructure:
                items = self.destructure(value, len(s.targets), s)
                for name, item in zip(s.targets, items):
                    env[name] = item
            else:
                env[s.targets[0]] = value
        elif isinstance(s, ast.Sample):
            self.sample(s, env, b, decl)
        elif isinstance(s, ast.Factor):
            if decl.kind != "gen":
                raise error("'factor' adds to a generative function's log density; it can only "
                            "be used inside a 'gen' declaration", s.span)
            if b.inside(("expect",)):
                raise error("'factor' cannot be used inside 'expect'", s.span)
            v = self.as_array(self.expr(s.value, env, b), s.value.span, "factor")
            if v.type.dtype != "float32":
                v = b.emit1("fn", REAL.with_shape(v.type.shape), [v], {"name": "float"}, s.span)
            if v.type.shape:
                v = b.emit1("fn", REAL, [v], {"name": "sum", "axis": None}, s.span)
            b.emit("factor", [], [v], {}, span=s.span)
        elif isinstance(s, ast.ParamDecl):
            env[s.name] = self.param(s, env, b, decl)
        elif isinstance(s, ast.Plate):
            self.plate(s, env, b, decl)
        elif isinstance(s, ast.For):
            self.loop(s, env, b, decl)
        elif isinstance(s, ast.If):
            self.conditional(s, env, b, decl)
        else:  # pragma: no cover - the grammar produces no other statement
            raise error(f"unsupported statement {type(s).__name__}", s.span)

    def destructure(self, value: Any, n: int, s: ast.Assign) -> tuple:
        if isinstance(value, tuple) and len(value) == n:
            return value
        got = f"a tuple of {len(value)}" if isinstance(value, tuple) else describe(value)
        raise error(f"cannot unpack {got} into {n} names", s.span)

    def sample(self, s: ast.Sample, env: dict, b: Builder, decl: ast.Decl) -> None:
        if decl.kind == "fn" and not b.inside(("expect",)):
            raise error("a 'fn' is deterministic: random choices belong in a 'gen' declaration "
                        "or inside 'expect'", s.span)
        if decl.kind == "objective" and not b.inside(("expect",)):
            raise error("an objective draws random choices only inside 'expect { ... }'", s.span)
        if b.inside(("cond",)):
            raise error("a random choice under a condition known only at run time is not "
                        "supported; use where(...) to select values, or a static condition",
                        s.span, help="to drop the choice's log density where a condition is "
                                     "false, mask it: 'x ~ d(...) if cond', outside the 'if'")
        value = self.expr(s.value, env, b)
        address = s.target if s.address is None else s.address
        if address == "" and not isinstance(value, GenValue):
            raise error("'at \"\"' includes a generative function's choices at the caller's "
                        "own addresses; a distribution's choice needs an address", s.span,
                        help=f"write '{s.target} ~ ...' or give it a name with 'at \"...\"'")
        if "/" in address:
            raise error(f"address '{address}' may not contain '/', which separates nested "
                        "addresses", s.span)
        if s.shares is not None and not isinstance(value, GenValue):
            raise error("'shares' names the call whose parameters a generative function's call "
                        f"uses; {describe(value)} has no parameters", s.shares_span)
        if isinstance(value, DistValue):
            estimator = self.estimator_for(s, value)
            args = [self.as_atom(a, s.value.span) for a in value.args]
            attrs = {"address": address, "dist": value.name, "form": value.form,
                     "estimator": estimator}
            baseline = self.baseline(s, env, b)
            if isinstance(baseline, (int, float)):
                attrs["baseline"] = float(baseline)
            elif isinstance(baseline, tuple):  # running(decay): the state and its weight
                args.extend(baseline)
            elif baseline is not None:
                args.append(baseline)
            mask = self.sample_mask(s, env, b, decl)
            if mask is not None:  # the last argument (passes/expand.py hands it to logpdf)
                attrs["masked"] = True
                args.append(mask)
            out = b.emit1("sample", value.value_type, args, attrs, span=s.span, hint=s.target)
            env[s.target] = out
        elif isinstance(value, GenValue):
            if s.mask is not None:
                raise error("a mask drops the log density of one distribution's elements; the "
                            f"generative function {value.decl} has its own choices", s.mask.span,
                            help="mask the choices inside it, passing the mask as an argument")
            if s.estimator is not None:
                raise error("'with' chooses the estimator of one distribution; the generative "
                            f"function {value.decl} has its own choices", s.estimator.span)
            if value.observations:
                raise error("a conditioned generative function cannot be called at an address; "
                            "condition the whole model from outside instead", s.value.span)
            if self.decls[value.decl].kind != "gen":
                raise error(f"'{value.decl}' is not a generative function", s.value.span)
            fn = self.specialise(value, self.call_scope(s, address or s.target, value))
            if address == "":
                self.check_included(fn, s, b)
            outs = [Var(a.type, s.target) for a in fn.body.outs]
            b.emit("call", outs, [v for _, v in value.dynamic],
                   {"callee": fn.name, "address": address}, span=s.span)
            env[s.target] = tree_unflatten(fn.retval_tree, outs) if outs else ()
        elif isinstance(value, Ref) and value.kind in ("distribution", "gen"):
            params = (self.library.distributions[value.name].forms[0]
                      if value.kind == "distribution"
                      else [a.name for a in self.decls[value.name].args])
            raise error(f"{describe(value)} must be called with its arguments after '~'",
                        s.value.span,
                        help=f"write '{s.target} ~ {value.name}({', '.join(params)})'")
        else:
            raise error(f"the right of '~' must be a distribution or a generative function, "
                        f"got {describe(value)}", s.value.span)

    def sample_mask(self, s: ast.Sample, env: dict, b: Builder, decl: ast.Decl):
        """The mask of ``x ~ d(...) if m``: None when there is none (or it is static
        ``true``), else a bool atom that broadcasts over the choice's elements (the
        backend checks its shape against theirs, which it knows: see ``_logpdf``)."""
        if s.mask is None:
            return None
        if decl.kind != "gen":
            raise error("a mask drops elements of a choice's log density, but a choice drawn "
                        "inside 'expect' is not scored", s.mask.span,
                        help="mask the choice in the generative function that draws it")
        m = self.expr(s.mask, env, b)
        if m is True:
            return None
        if not isinstance(m, bool):
            m = self.as_array(m, s.mask.span, "a mask")
            if m.type.dtype != "bool":
                raise error(f"a mask must be a bool or a bool array, got {m.type!r}",
                            s.mask.span, help="compare to make one, as in 'if y > 0.0', or "
                                              "pass a bool array")
        return literal(m) if isinstance(m, bool) else m

    def check_included(self, fn: Function, s: ast.Sample, b: Builder) -> None:
        """An included call (``y ~ part() at ""``) draws at the caller's own addresses: one
        already drawn before it in this body is an error at the user's ``~`` (one drawn
        after it is reported at that later choice, by the trace type)."""
        from .passes.addresses import sites  # a pure IR analysis

        drawn: dict[str, Any] = {}
        builder = b
        while builder is not None:
            drawn.update({a: sp for a, _, sp in sites(Region([], builder.eqns, []),
                                                         self.functions)})
            builder = builder.parent
        for address, _, site_span in sites(fn.body, self.functions):
            if address in drawn:
                notes = [Note(f"'{address}' is drawn here", drawn[address])] if drawn[address] \
                    else []
                if site_span is not None:
                    notes.append(Note(f"and {fn.name.split('(')[0]} draws it here", site_span))
                raise error(f"including {fn.name.split('(')[0]} here draws '{address}' a second "
                            "time", s.span, notes=notes,
                            help="rename one of the choices, or call it at an address "
                                 f"('{s.target} ~ ...' nests its choices under '{s.target}/')")

    def call_scope(self, s: ast.Sample, address: str, value: GenValue) -> str:
        """The scope a generative function's call names its parameters under: the
        caller's scope and the call's address (``enc.h1``), or with ``shares h1``, the
        scope of the earlier call at ``h1`` in the same body (its parameters)."""
        if s.shares is None:
            self.calls_here[address] = s
            return f"{self.scope}.{address}"
        other = self.calls_here.get(s.shares)
        if other is None or s.shares == address:
            calls = [a for a in self.calls_here if a != address]
            raise error(f"'shares {s.shares}': there is no earlier call of a generative function "
                        f"at address '{s.shares}' in {self.current_decl.name}", s.shares_span,
                        help=did_you_mean(s.shares, calls) or (
                            "name the address of an earlier call, as in 'h2 ~ layer(h1) shares h1'"
                            if not calls else "earlier calls: " + ", ".join(calls)))
        return f"{self.scope}.{s.shares}"

    def estimator_for(self, s: ast.Sample, d: DistValue) -> str:
        dist = self.library.distributions[d.name]
        if s.estimator is None:
            return dist.default_estimator
        name = s.estimator.name
        names = estimator_names(self.library)
        if name not in names:
            raise error(f"unknown estimator '{name}'", s.estimator.span,
                        help=did_you_mean(name, names) or "estimators: " + ", ".join(names))
        if name not in dist.estimators:
            raise error(unsound_estimator_message(name, d.name, s.address or s.target, dist),
                        s.estimator.span,
                        help="sound estimators here: " + ", ".join(sorted(dist.estimators)))
        if s.estimator.args or (s.estimator.kwargs and name != "reinforce"):
            raise error(f"estimator '{name}' takes no arguments"
                        + (" (reinforce takes baseline=...)" if name != "reinforce" else
                           "; give the baseline by keyword: reinforce(baseline=...)"),
                        s.estimator.span)
        return name

    def baseline(self, s: ast.Sample, env: dict, b: Builder):
        """A REINFORCE baseline: a static number, a traced scalar (a learned param), or
        ``running(decay)``: a running average of the objective, kept as a state parameter."""
        if s.estimator is None or not s.estimator.kwargs:
            return None
        (kw,) = s.estimator.kwargs if len(s.estimator.kwargs) == 1 else (None,)
        if kw is None or kw.name != "baseline":
            bad = next(k for k in s.estimator.kwargs if k.name != "baseline") \
                if any(k.name != "baseline" for k in s.estimator.kwargs) else s.estimator.kwargs[1]
            raise error(f"reinforce takes one keyword, baseline=..., not '{bad.name}'", bad.span)
        if (isinstance(kw.value, ast.Call) and isinstance(kw.value.func, ast.Name)
                and kw.value.func.id == "running" and "running" not in env):
            return self.running_baseline(s, kw.value, env, b)
        v = self.expr(kw.value, env, b)
        if is_static_number(v) and not isinstance(v, bool):
            return float(v)
        v = self.as_array(v, kw.value.span, "a baseline")
        if v.type.shape != () or v.type.dtype != "float32":
            raise error(f"a baseline must be a real scalar, got {v.type!r}", kw.value.span,
                        help="it is subtracted from the expectation's value, one real number: "
                             "a constant, or a 'param bl: real' of the objective")
        return v

    def running_baseline(self, s: ast.Sample, call: ast.Call, env: dict, b: Builder) -> tuple:
        """``baseline=running(decay)``: a state parameter b that ``fit`` moves to
        ``decay·b + (1 − decay)·ℓ`` each step, ℓ the mean over its uses (a loop's steps, a
        plate's expectations) of the value of their blocks, weighted as the objective
        weighs them: b's gradient estimate is Σ_u c_u (ℓ_u − b), and that of its weight w
        (a second state parameter, at 0) Σ_u c_u. Returns the reads of (b, w)."""
        args = [self.expr(a, env, b) for a in call.args]
        kwargs = {k.name: self.expr(k.value, env, b) for k in call.kwargs}
        try:
            bound = bind_arguments("running", (ParamSpec("decay", static=True, default=0.9),),
                                   args, kwargs)
        except ValueError as ex:
            raise error(str(ex), call.span) from None
        decay = bound["decay"]
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise error(f"running(decay) needs a number with 0 <= decay < 1, got {decay!r}",
                        call.span, help="0.9 averages over roughly the last 10 steps")
        path = f"{self.scope}.{s.address or s.target}.baseline"
        init = Function(f"init {path}", Region([], [], [literal(0.0)]), "init", call.span)
        previous = self.params.get(path)
        weight = path + "_weight"
        if previous is None:
            self.params[path] = ParamInfo(path, REAL, ("real",), init, call.span,
                                          running=float(decay))
            self.params[weight] = ParamInfo(weight, REAL, ("real",), init, call.span,
                                            weight_of=path)
        return (b.emit1("param", REAL, [], {"path": path}, span=call.span, hint="baseline"),
                b.emit1("param", REAL, [], {"path": weight}, span=call.span, hint="weight"))

    def param(self, s: ast.ParamDecl, env: dict, b: Builder, decl: ast.Decl) -> Var:
        if decl.kind == "fn":
            raise error("a 'fn' cannot declare parameters; declare them in the 'gen' or "
                        "'objective' that uses it", s.span)
        if b.kind != "function" or b.parent is not None:
            raise error("'param' must be declared at the top level of its declaration, not "
                        "inside a plate, loop, branch or expect", s.span)
        t = s.type
        dims = t.dims or ()
        shape = [self.param_dimension(d, s, env) for d in dims]
        constraint = self.constraint_of(t)
        if constraint[0] == "simplex" and not shape:
            raise error("a simplex parameter needs a size, like simplex[3]", t.span)
        if constraint[0] == "corr_cholesky":  # corr_cholesky[D]: a D x D factor
            if len(shape) != 1:
                raise error("a corr_cholesky parameter has one size, the dimension of its "
                            "correlation matrix: corr_cholesky[3] is a 3 x 3 Cholesky factor",
                            t.span)
            shape = shape * 2
        dtype = "float32"
        ptype = ArrayType(dtype, tuple(shape))
        path = f"{self.scope}.{s.name}"
        init_fn = self.param_init(s, ptype, env, path)
        previous = self.params.get(path)
        if previous is not None and (previous.type != ptype or previous.constraint != constraint):
            raise error(f"parameter {path} has type {ptype!r} here but {previous.type!r} in "
                        "another use of its declaration", s.span,
                        help="one path names one parameter: a function called from Python with "
                             "other argument sizes, or two calls that share parameters "
                             "('shares'), must give it the same shape")
        if previous is None:
            self.params[path] = ParamInfo(path, ptype, constraint, init_fn, s.span)
        return b.emit1("param", ptype, [], {"path": path}, span=s.span, hint=s.name)

    def param_dimension(self, d: int | str, s: ast.ParamDecl, env: dict) -> int:
        """A dimension of a parameter's type: a number, or a name bound to a static int
        (an ``int`` argument, a size bound by an argument's type, ``size``/``shape``)."""
        if not isinstance(d, str):
            return d
        v = env.get(d)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        what = (f"not defined here" if d not in env else
                f"{describe(v)}, known only when the program runs" if isinstance(v, (Var, Lit))
                else describe(v))
        raise error(f"dimension '{d}' of parameter '{s.name}' must be a static int, but "
                    f"'{d}' is {what}", s.type.span,
                    help="a parameter's shape is fixed when the program is compiled: take it from "
                         "an int argument ('H: int'), from an argument's size ('x: real[D]' binds "
                         "D), or from 'D = shape(x)[-1]'")

    def _call_function(self, name: str, args: list, kwargs: dict, span, b: Builder) -> Any:
        """A library function's call; a learnable one (a module passed as an extern) also
        reads its parameters, ``param[path=enc.Dense_0.kernel]``, and passes them after
        its arguments (see ``LearnedParameter`` in library.py)."""
        f = self.library.functions.get(name) or self.externs.get(name)
        learned = getattr(f, "parameters", ())
        if learned:
            args = list(args) + [self.learned_param(name, p, span, b) for p in learned]
        return super()._call_function(name, args, kwargs, span, b)

    def learned_param(self, function: str, p: LearnedParameter, span, b: Builder) -> Var:
        """The parameter ``<function>.<name>`` of a learnable function: one per function,
        however many calls read it (a module passed once is one set of weights), drawn
        at ``init`` by the initialiser the function names (its module's own init)."""
        path = f"{function}.{p.name}"
        if path not in self.params:
            init = Builder("function")
            value = init.emit1("init", p.type, [], {"name": p.initializer, "shape": p.type.shape},
                               span=span)
            self.params[path] = ParamInfo(path, p.type, ("real",),
                                          Function(f"init {path}", Region([], init.eqns, [value]),
                                                   "init", span), span)
        return b.emit1("param", p.type, [], {"path": path}, span=span, hint=p.name.split(".")[-1])

    def constraint_of(self, t: ast.TypeAnn) -> tuple:
        if t.name in ("simplex", "corr_cholesky"):
            return (t.name,)
        if t.name != "real":
            raise error(f"a parameter's type is real (with optional bounds), simplex or "
                        f"corr_cholesky, "
                        f"not '{t.name}'", t.span)
        c = dict(t.constraint)
        for k in c:
            if k not in ("lower", "upper"):
                raise error(f"unknown constraint '{k}' (use lower=... and upper=...)", t.span)
        if "lower" in c and "upper" in c:
            if not c["lower"] < c["upper"]:
                raise error("the lower bound must be below the upper bound", t.span)
            return ("interval", float(c["lower"]), float(c["upper"]))
        if "lower" in c:
            return ("lower", float(c["lower"]))
        if "upper" in c:
            return ("upper", float(c["upper"]))
        return ("real",)

    def param_init(self, s: ast.ParamDecl, ptype: ArrayType, env: dict, path: str) -> Function:
        """A parameter-free function computing the initial (constrained) value."""
        b = Builder("function")
        if s.init is None:
            value: Any = None
        elif (isinstance(s.init, ast.Call) and isinstance(s.init.func, ast.Name)
              and s.init.func.id in self.library.initializers and s.init.func.id not in env):
            init = self.library.initializers[s.init.func.id]
            args = [self.static_value(self.expr(a, env, b), a.span, "an initialiser argument")
                    for a in s.init.args]
            kwargs = {k.name: self.static_value(self.expr(k.value, env, b), k.span,
                                                "an initialiser argument") for k in s.init.kwargs}
            try:
                bound = bind_arguments(init.name, init.params, args, kwargs)
            except ValueError as e:
                raise error(str(e), s.init.span) from None
            value = b.emit1("init", ptype, [], {"name": init.name, "shape": ptype.shape,
                                                 **bound}, span=s.init.span)
        else:
            value = self.expr(s.init, env, b)
        if value is None and self.constraint_of(s.type)[0] == "corr_cholesky":
            value = self.call_function("eye", [ptype.shape[-1]], {}, s.span, b)  # identity
        elif value is None:
            value = literal(float(_default_start(self.constraint_of(s.type), ptype)))
        atom = self.as_array(value, s.init.span if s.init else s.span, "a parameter's initial value")
        try:
            _broadcast_to(atom.type.shape, ptype.shape)
        except ValueError:
            raise error(f"the initial value of {path} has type {atom.type!r}, which does not fit "
                        f"the parameter's type {ptype!r}", s.init.span if s.init else s.span) from None
        if atom.type != ptype:
            atom = b.emit1("fn", ptype, [atom], {"name": "broadcast_to", "shape": ptype.shape})
        return Function(f"init {path}", Region([], b.eqns, [atom]), "init", s.span)

    # ------------------------------------------------------------ plates, loops, branches

    def plate(self, s: ast.Plate, env: dict, b: Builder, decl: ast.Decl) -> None:
        n = self.static_size(self.expr(s.size, env, b), s.size.span, "a plate")
        inner = Builder("plate", b, Var(INT, s.index), n)
        self.index_ranges[inner.index] = (0, n - 1, s.index, s.size.span, "plate", n)
        inner_env = dict(env)
        inner_env[s.index] = inner.index
        result = self.block(s.body, inner_env, inner, decl)
        if result is not None:
            raise error("'return' cannot be used inside a plate", s.span)
        exported = self.exported(env, inner_env, inner, s.index)
        outs = [Var(stacked(v.type, n), name) for name, v in exported]
        mapped_outer = [outer for outer, _ in inner.mapped.values()]
        region = Region(inner.params + [p for _, p in inner.mapped.values()], inner.eqns,
                        [v for _, v in exported])
        b.emit("plate", outs, mapped_outer, {"size": n}, [region], s.span)
        for (name, v), out in zip(exported, outs):
            env[name] = self.mark(out, self.sources(v))

    def exported(self, before: dict, after: dict, inner: Builder, index: str) -> list[tuple[str, Var]]:
        """Names (re)bound inside a plate or loop body to values defined there."""
        result = []
        for name, v in after.items():
            if name == index or (name in before and before[name] is v):
                continue
            if isinstance(v, Var) and inner.defines(v):
                result.append((name, v))
            elif is_static_number(v) or isinstance(v, Lit):
                if name in before and before[name] is not v:
                    result.append((name, self.materialise(v, inner)))
        return result

    def materialise(self, v, b: Builder) -> Var:
        atom = literal(v) if is_static_number(v) else v
        return b.emit1("fn", atom.type, [atom], {"name": "identity"})

    def loop(self, s: ast.For, env: dict, b: Builder, decl: ast.Decl) -> None:
        n = self.static_size(self.expr(s.size, env, b), s.size.span, "a for loop")
        assigned = _assigned_names(s.body)
        carried = [k for k in assigned if k in env and k != s.index]
        inits = []
        for k in carried:
            v = env[k]
            if is_static_number(v):
                v = literal(float(v) if isinstance(v, float) else v)
            if not isinstance(v, (Var, Lit)):
                raise error(f"'{k}' is carried by the loop, so it must be an array, "
                            f"not {describe(v)}", s.span)
            inits.append(v)
        # What the carried values' estimates depend on grows to a fixed point: the
        # body is lowered again (its expects numbered alike) while it grows.
        assumed = [self.sources(v) for v in inits]
        start = self.expect_count
        for _ in range(64):
            self.expect_count = start
            inner, inner_env, carry_params = self.loop_body(s, n, env, b, decl, carried, inits,
                                                            assumed)
            after = [a | self.sources(inner_env[k]) for k, a in zip(carried, assumed)]
            if after == assumed:
                break
            assumed = after
        else:  # each repeat adds an expect to a carried value's sources: cannot happen
            raise error("what this loop's carried values estimate does not settle", s.span)
        new_carry = []
        for k, init, p in zip(carried, inits, carry_params):
            v = inner_env[k]
            if is_static_number(v):
                v = literal(v)
            if not isinstance(v, (Var, Lit)) or v.type != init.type:
                got = v.type if isinstance(v, (Var, Lit)) else describe(v)
                raise error(f"'{k}' is carried by the loop and must keep its type: it is "
                            f"{init.type!r} before the loop but {got!r} after one step",
                            _assignment_span(s.body, k) or s.span,
                            notes=[Note("the loop starts here", s.span)])
            new_carry.append(v)
        carried_set = set(carried)
        exported = [(k, v) for k, v in self.exported(env, inner_env, inner, s.index)
                    if k not in carried_set]
        mapped_outer = [outer for outer, _ in inner.mapped.values()]
        region = Region(inner.params + [p for _, p in inner.mapped.values()], inner.eqns,
                        new_carry + [v for _, v in exported])
        outs = [Var(v.type, k) for k, v in zip(carried, inits)]
        outs += [Var(stacked(v.type, n), k) for k, v in exported]
        b.emit("scan", outs, inits + mapped_outer, {"length": n, "carries": len(inits)},
               [region], s.span)
        sources = assumed + [self.sources(v) for _, v in exported]
        for k, out, src in zip(carried + [k for k, _ in exported], outs, sources):
            env[k] = self.mark(out, src)

    def loop_body(self, s: ast.For, n: int, env: dict, b: Builder, decl: ast.Decl,
                  carried: list, inits: list, assumed: list) -> tuple[Builder, dict, list]:
        """Lower a for loop's body once, its carried values estimating ``assumed``."""
        inner = Builder("scan", b, Var(INT, s.index))
        self.index_ranges[inner.index] = (0, n - 1, s.index, s.size.span, "for loop", n)
        carry_params = [self.mark(Var(v.type, k), a) for k, v, a in zip(carried, inits, assumed)]
        inner.params += carry_params
        inner.defined.update(p for p in carry_params)
        inner_env = dict(env)
        inner_env[s.index] = inner.index
        inner_env.update(zip(carried, carry_params))
        result = self.block(s.body, inner_env, inner, decl)
        if result is not None:
            raise error("'return' cannot be used inside a for loop", s.span)
        return inner, inner_env, carry_params

    def conditional(self, s: ast.If, env: dict, b: Builder, decl: ast.Decl) -> None:
        cond = self.expr(s.cond, env, b)
        if isinstance(cond, (bool, int)) and not isinstance(cond, float):
            chosen = s.then if cond else s.orelse
            if chosen is not None:
                if self.block(chosen, env, b, decl) is not None:
                    raise error("'return' cannot be used inside an if", s.span)
            return
        c = self.as_array(cond, s.cond.span, "a condition")
        if c.type.shape != () or c.type.dtype != "bool":
            raise error(f"a condition must be a scalar bool, got {c.type!r}", s.cond.span,
                        help="use where(cond, a, b) to select elementwise")
        branches, envs = [], []
        for blk in (s.then, s.orelse):
            inner = Builder("cond", b)
            inner_env = dict(env)
            if blk is not None and self.block(blk, inner_env, inner, decl) is not None:
                raise error("'return' cannot be used inside an if", s.span)
            branches.append(inner)
            envs.append(inner_env)
        names = [k for k in dict.fromkeys(list(envs[0]) + list(envs[1]))
                 if any(k not in env or e.get(k) is not env[k] for e in envs)
                 and all(k in e for e in envs)]
        outs_by_branch = [[], []]
        kept = []
        for k in names:
            vals = []
            for inner, e in zip(branches, envs):
                v = e[k]
                if is_static_number(v):
                    v = literal(v)
                vals.append(v)
            if not all(isinstance(v, (Var, Lit)) and isinstance(v.type, ArrayType) for v in vals):
                continue
            if vals[0].type != vals[1].type:
                notes = [Note(f"here it has type {v.type!r}", _assignment_span(blk, k))
                         for blk, v in zip((s.then, s.orelse), vals)
                         if blk is not None and _assignment_span(blk, k) is not None]
                raise error(f"'{k}' has type {vals[0].type!r} in one branch and {vals[1].type!r} "
                            "in the other", s.span, notes=notes)
            kept.append((k, vals[0].type))
            for i in range(2):
                outs_by_branch[i].append(vals[i])
        regions = [Region([], br.eqns, outs) for br, outs in zip(branches, outs_by_branch)]
        outs = [Var(t, k) for k, t in kept]
        b.emit("cond", outs, [c], {}, regions, s.span)
        for (k, _), out, a, b_ in zip(kept, outs, *outs_by_branch):
            env[k] = self.mark(out, self.sources(a) | self.sources(b_))


def _reaches_scope(region: Region, scope: str) -> bool:
    """Whether a lowered body reads parameters named under ``scope`` (its own, or a
    scoped callee's), so that it must be lowered again for another scope."""
    for e in walk(region):
        if e.op == "param" and e.attrs["path"].startswith(scope + "."):
            return True
        if e.op == "call" and "@" in e.attrs["callee"]:
            return True
    return False


def _type_tree(ret):
    if ret is None:
        return ()
    if isinstance(ret, tuple):
        return tuple(_type_tree(x) for x in ret)
    if isinstance(ret, dict):
        return {k: _type_tree(v) for k, v in ret.items()}
    return type_of(ret)


def _default_start(c: tuple, ptype: ArrayType) -> float:
    """A parameter's initial value when none is given: inside its constraint, near its middle."""
    kind = c[0]
    if kind == "lower":
        return c[1] + 1.0
    if kind == "upper":
        return c[1] - 1.0
    if kind == "interval":
        return (c[1] + c[2]) / 2
    if kind == "simplex":
        return 1.0 / ptype.shape[-1]
    return 0.0


def _broadcast_to(shape, target):
    if len(shape) > len(target):
        raise ValueError
    for a, b in zip(reversed(shape), reversed(target)):
        if a not in (1, b):
            raise ValueError


def _assignment_span(block: ast.Block, name: str) -> Span | None:
    """The span of the last statement in ``block`` (or nested in it) that binds ``name``."""
    found = None
    for s in block.stmts:
        if isinstance(s, ast.Assign) and name in s.targets:
            found = s.span
        elif isinstance(s, ast.Sample) and s.target == name:
            found = s.span
        elif isinstance(s, (ast.Plate, ast.For)):
            found = _assignment_span(s.body, name) or found
        elif isinstance(s, ast.If):
            for blk in (s.then, s.orelse):
                if blk is not None:
                    found = _assignment_span(blk, name) or found
    return found


def _assigned_names(block: ast.Block) -> list[str]:
    names: list[str] = []
    for s in block.stmts:
        if isinstance(s, ast.Assign):
            names.extend(s.targets)
        elif isinstance(s, ast.Sample):
            names.append(s.target)
        elif isinstance(s, ast.ParamDecl):
            names.append(s.name)
        elif isinstance(s, (ast.Plate, ast.For)):
            names.extend(_assigned_names(s.body))
        elif isinstance(s, ast.If):
            names.extend(_assigned_names(s.then))
            if s.orelse is not None:
                names.extend(_assigned_names(s.orelse))
    return list(dict.fromkeys(names))


__all__ = ["Lowerer", "Builder", "estimator_names", "SPECIAL_BUILTINS", "unsound_estimator_message"]
