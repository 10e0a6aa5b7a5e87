"""Lowering of expressions: names, operators, calls, indexing, ``expect``.

The half of the lowering (lower.py) that turns an expression into a value:
a static Python value when everything it depends on is static (sizes fold
at compile time), or an IR atom emitted into the current region. Calls
resolve to library functions, distributions (a :class:`DistValue`, drawn
later by ``~``), generative functions (a :class:`GenValue`), inlined
``fn`` s and objectives, and the builtins ``size``, ``shape``, ``sim``,
``density`` and ``retval``. Objectives' estimated reals are tracked here
with the rules of lower_estimates.py (the checker applies the same rules to
the syntax tree), so a non-linear function of an expectation is rejected
where it is written; a plate's or loop's index carries its static range, so
an index that would run past a dimension is rejected rather than clamped.

    >>> # lowering "x @ w + b" with x, w, b atoms emits fn[matmul] then fn[add]
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable

from . import ast
from .builder import Builder
from .diagnostics import Note, did_you_mean, error
from .indexing import broadcast_shapes, index_shape
from .ir import Lit, Region, Var
from .library import bind_arguments
from .lower_estimates import BINARY_FUNCTIONS, EMPTY, NotUnbiased, as_input, combine
from .types import REAL, ArrayType, TraceType, tree_leaves, tree_unflatten
from .combinators import COMBINATORS, CombinatorLowering
from .values import (DistValue, GenValue, Ref, describe, is_generative, is_static_number, literal,
                     type_of)

SPECIAL_BUILTINS = {"size", "shape", "ndim", "sim", "rsim", "density", "retval", "detach",
                    *COMBINATORS}

_STATIC_FOLD: dict[str, Callable] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "floor_divide": operator.floordiv, "mod": operator.mod, "pow": operator.pow,
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
    "logical_and": lambda a, b: bool(a and b), "logical_or": lambda a, b: bool(a or b),
}


class ExpressionLowering(CombinatorLowering):
    """Mixed into :class:`~ppl.compiler.lower.Lowerer`: the expression rules."""


    # ------------------------------------------------------------ expressions

    def expr(self, e, env: dict, b: Builder) -> Any:
        method = getattr(self, "expr_" + type(e).__name__)
        return method(e, env, b)

    def expr_Name(self, e: ast.Name, env: dict, b: Builder) -> Any:
        if e.id in env:
            return env[e.id]
        if e.id in self.decls:
            return Ref(self.decls[e.id].kind, e.id)
        if e.id in self.externs:
            return Ref("function", e.id)
        if e.id in self.library.functions:
            return Ref("function", e.id)
        if e.id in self.library.distributions:
            return Ref("distribution", e.id)
        if e.id in SPECIAL_BUILTINS:
            return Ref("builtin", e.id)
        if e.id in self.library.initializers:
            raise error(f"the initialiser {e.id}() can only initialise a 'param'", e.span)
        if e.id in ("pi", "inf"):
            return math.pi if e.id == "pi" else math.inf
        raise error(f"undefined name '{e.id}'", e.span,
                    help=did_you_mean(e.id, list(env) + list(self.decls)
                                      + list(self.library.functions)
                                      + list(self.library.distributions)))

    def expr_Literal(self, e: ast.Literal, env: dict, b: Builder) -> Any:
        return e.value

    def expr_Unary(self, e: ast.Unary, env: dict, b: Builder) -> Any:
        v = self.expr(e.operand, env, b)
        if e.op == "neg":
            if is_static_number(v) and not isinstance(v, bool):
                return -v
            return self.call_function("neg", [v], {}, e.span, b)
        if isinstance(v, bool):
            return not v
        return self.call_function("logical_not", [v], {}, e.span, b)

    def expr_Binary(self, e: ast.Binary, env: dict, b: Builder) -> Any:
        left = self.expr(e.left, env, b)
        if e.op in ("and", "or") and isinstance(left, bool):
            # Static short-circuit: `n > 0 and x[0] > 1` with n static.
            if (e.op == "and" and not left) or (e.op == "or" and left):
                return left
        right = self.expr(e.right, env, b)
        name = BINARY_FUNCTIONS[e.op]
        if is_static_number(left) and is_static_number(right) and name in _STATIC_FOLD:
            try:
                result = _STATIC_FOLD[name](left, right)
            except (ZeroDivisionError, OverflowError, ValueError) as ex:
                reason = ex.args[-1] if ex.args else ex  # OverflowError's args are (errno, text)
                raise error(f"cannot compute {left!r} {e.op} {right!r}: {reason}", e.span) from None
            if name == "mod" and isinstance(left, int) and isinstance(right, int):
                return result
            return result
        for side in (left, right):
            if isinstance(side, (DistValue, Ref)):
                raise error(f"'{e.op}' needs numbers or arrays, not {describe(side)}", e.span,
                            help="draw a value from a distribution with '~' first, as in "
                                 "'x ~ normal(0.0, 1.0)'" if isinstance(side, DistValue) else None)
        if is_generative(left) or is_generative(right):
            raise error(f"'{e.op}' cannot be applied to a generative function", e.span,
                        help="condition a model with '|', as in model(x) | {y: data}"
                        if e.op == "|" else None)
        return self.call_function(name, [left, right], {}, e.span, b)

    def expr_Condition(self, e: ast.Condition, env: dict, b: Builder) -> Any:
        target = self.expr(e.target, env, b)
        if not is_generative(target):
            raise error(f"'|' conditions a generative function on observations, but the left "
                        f"side is {describe(target)}", e.target.span)
        obs = self.expr(e.observations, env, b)
        self.estimate_input("an observation", obs, e.observations.span)
        if not isinstance(obs, dict):
            raise error(f"the right of '|' must be a record of observations like {{y: data}}, "
                        f"got {describe(obs)}", e.observations.span)
        observations = dict(target.observations)
        for addr, v in obs.items():
            if addr in observations:
                raise error(f"address '{addr}' is observed twice", e.observations.span)
            observations[addr] = self.as_array(v, e.observations.span, f"the observation of '{addr}'")
        if not isinstance(target, GenValue):
            return self.condition_combinator(target, dict(observations), e.span)
        return GenValue(target.decl, target.static, target.dynamic, tuple(observations.items()),
                        e.span, target.detached)

    def expr_TupleLit(self, e: ast.TupleLit, env: dict, b: Builder) -> Any:
        return tuple(self.expr(x, env, b) for x in e.items)

    def expr_RecordLit(self, e: ast.RecordLit, env: dict, b: Builder) -> Any:
        out = {}
        for k, x in e.fields:
            if k in out:
                raise error(f"field '{k}' appears twice in this record", e.span)
            out[k] = self.expr(x, env, b)
        return out

    def expr_ArrayLit(self, e: ast.ArrayLit, env: dict, b: Builder) -> Any:
        if not e.items:
            raise error("an empty array literal has no type; use zeros(0)", e.span)
        items = [self.expr(x, env, b) for x in e.items]
        if all(isinstance(x, str) for x in items):  # a static list of names (marginal's keep)
            return tuple(items)
        if all(is_static_number(x) for x in items) and any(isinstance(x, float) for x in items):
            items = [float(x) for x in items]
        return self.call_function("stack", items, {}, e.span, b)

    def expr_Field(self, e: ast.Field, env: dict, b: Builder) -> Any:
        v = self.expr(e.value, env, b)
        if isinstance(v, dict):
            if e.name not in v:
                raise error(f"the record has no field '{e.name}'", e.span,
                            help=did_you_mean(e.name, v) or f"its fields: {', '.join(v)}")
            return v[e.name]
        if isinstance(v, Var) and isinstance(v.type, TraceType):
            return self.trace_get(v, e.name, e.span, b)
        raise error(f"{describe(v)} has no fields", e.span)

    def expr_Index(self, e: ast.Index, env: dict, b: Builder) -> Any:
        v = self.expr(e.value, env, b)
        if isinstance(v, Var) and isinstance(v.type, TraceType):
            if len(e.indices) != 1 or not isinstance(e.indices[0], ast.Literal) \
                    or not isinstance(e.indices[0].value, str):
                raise error("a trace is indexed by an address string, like t[\"x\"]", e.span)
            return self.trace_get(v, e.indices[0].value, e.span, b)
        if isinstance(v, dict):
            key = self.single_key(e, env, b)
            if not isinstance(key, str) or key not in v:
                raise error("a record is indexed by one of its field names", e.span)
            return v[key]
        if isinstance(v, tuple):
            k = self.single_key(e, env, b)
            if not isinstance(k, int) or isinstance(k, bool) or not -len(v) <= k < len(v):
                raise error(f"a tuple of {len(v)} is indexed by a static int in range", e.span)
            return v[k]
        base = self.as_array(v, e.value.span, "indexing")
        # Hoist outer[i] inside a plate over i: the plate reads its slice directly.
        if (len(e.indices) == 1 and b.kind == "plate" and isinstance(e.indices[0], ast.Name)
                and env.get(e.indices[0].id) is b.index and isinstance(base, Var)
                and not b.defines(base) and base.type.ndim >= 1):
            if base.type.shape[0] == b.size:
                if base not in b.mapped:
                    p = Var(ArrayType(base.type.dtype, base.type.shape[1:]), base.hint)
                    b.mapped[base] = (base, p)
                    b.defined.add(p)
                    self.mark(p, self.sources(base))
                return b.mapped[base][1]
        spec, args, shape = [], [base], list(base.type.shape)
        items: list[tuple] = []  # the spec, with each traced index's shape (indexing.py)
        arrays: list = []  # (shape, span) of each traced index
        dim = 0
        for idx in e.indices:
            if isinstance(idx, ast.NewAxis):
                spec.append(("n",))
                items.append(("n",))
                continue
            if dim >= len(shape):
                raise error(f"too many indices for an array of type {base.type!r}", e.span)
            n = shape[dim]
            if isinstance(idx, ast.Slice):
                start = self.static_int(idx.start, env, b, 0)
                stop = self.static_int(idx.stop, env, b, n)
                start, stop = _clip_slice(start, n), _clip_slice(stop, n)
                spec.append(("s", start, stop))
                items.append(spec[-1])
            else:
                k = self.expr(idx, env, b)
                if isinstance(k, int) and not isinstance(k, bool):
                    if not -n <= k < n:
                        raise error(f"index {k} is out of bounds for a dimension of size {n}",
                                    idx.span)
                    spec.append(("c", k % n))
                    items.append(spec[-1])
                else:
                    ka = self.traced_index(k, idx, n)
                    spec.append(("d",))
                    items.append(("d", ka.type.shape))
                    args.append(ka)
                    arrays.append((ka.type.shape, idx.span))
            dim += 1
        if broadcast_shapes([a for a, _ in arrays]) is None:
            described = " and ".join(f"[{', '.join(map(str, a))}]" for a, _ in arrays)
            raise error(f"the index arrays have shapes {described}, which do not broadcast "
                        "together", arrays[-1][1],
                        help="index arrays pick elements together, as in NumPy: give them one "
                             "shape, or add axes with None to pick every combination")
        out_shape = index_shape(tuple(shape), items)
        sources = self.estimate_sources("index", args, e.span)
        return self.mark(b.emit1("index", ArrayType(base.type.dtype, out_shape), args,
                                 {"spec": tuple(spec)}, span=e.span), sources)

    def single_key(self, e: ast.Index, env: dict, b: Builder):
        """The value of the one index of a tuple or record (``t[0]``, ``r["a"]``), or None
        when there are several, or a slice or ``None`` (which index arrays only)."""
        if len(e.indices) != 1 or isinstance(e.indices[0], (ast.Slice, ast.NewAxis)):
            return None
        return self.expr(e.indices[0], env, b)

    def traced_index(self, k, idx, n: int):
        """A traced index (a scalar or an array of ints) of a dimension of size ``n``:
        a literal array of static ints is bounds-checked here; other values outside the
        dimension are clamped when the program runs."""
        ka = self.as_array(k, idx.span, "an index")
        if ka.type.dtype == "bool":
            raise error(f"an index must be an int, got {ka.type!r}: selecting with a bool "
                        "array gives a number of elements known only at run time", idx.span,
                        help="use where(mask, x, ...) to keep the shape, or a mask on the "
                             "random choice ('y ~ d(...) if mask')")
        if ka.type.dtype != "int32":
            raise error(f"an index must be an int, got {ka.type!r}", idx.span,
                        help="convert it with int(...), which truncates towards zero")
        for value in _static_ints(idx):
            if not -n <= value < n:
                raise error(f"index {value} is out of bounds for a dimension of size {n}",
                            idx.span)
        self.check_index_range(ka, n, idx.span)
        return ka

    def check_index_range(self, k, n: int, span) -> None:
        """A traced index whose range is known (a plate's or loop's index, shifted by a
        static int) must stay inside the dimension: at run time it would be clamped."""
        known = self.index_ranges.get(k) if isinstance(k, Var) else None
        if known is None:
            return
        lo, hi, index, size_span, kind, size = known
        if hi < lo or (lo >= -n and hi < n):
            return
        bad = hi if hi >= n else lo
        raise error(f"this index reaches {bad}, out of bounds for a dimension of size {n}",
                    span, notes=[Note(f"'{index}' runs from 0 to {size - 1}: the {kind} has size {size}",
                                      size_span)],
                    help=f"make the {kind} as long as the dimension (size(...) of the array), "
                         "or the array longer")

    def static_int(self, e, env, b, default: int) -> int:
        if e is None:
            return default
        v = self.expr(e, env, b)
        if not isinstance(v, int) or isinstance(v, bool):
            raise error("slice bounds must be static ints", e.span,
                        help="use an index array, or where(...), for bounds known only at run time")
        return v

    def expr_Expect(self, e: ast.Expect, env: dict, b: Builder) -> Any:
        decl = self.current_decl
        gens = [n for n in self.stack if n in self.decls and self.decls[n].kind == "gen"]
        if decl.kind == "gen" or gens:
            through = (f" ('{decl.name}' is called from the generative function '{gens[-1]}')"
                       if decl.kind != "gen" else "")
            raise error("'expect' belongs in an objective (or a fn it calls), not in a "
                        "generative function" + through, e.span)
        if b.inside(("cond",)):
            raise error("an 'expect' under a condition known only at run time is not supported",
                        e.span, help="compute each expectation outside the if, and select "
                                     "between them with where(cond, a, b)")
        inner = Builder("expect", b)
        result = self.block(e.body, dict(env), inner, decl)
        if result is None:
            raise error("an 'expect' block must end with 'return' of the quantity to average",
                        e.span)
        value = self.as_array(result, e.span, "the value of 'expect'")
        if value.type.shape != ():
            raise error(f"'expect' averages a real scalar, but its block returns "
                        f"{value.type!r}", e.body.stmts[-1].span,
                        help="sum or average the values first")
        if value.type.dtype != "float32":  # E[k²] of an int k is a real, as numpy's mean
            value = inner.emit1("fn", REAL, [value], {"name": "float"}, span=e.body.stmts[-1].span)
        out = b.emit1("expect", REAL, [], {}, span=e.span,
                      regions=[Region([], inner.eqns, [value])])
        self.expect_count += 1
        return self.mark(out, frozenset({self.expect_count}) | self.sources(value))

    def expr_Call(self, e: ast.Call, env: dict, b: Builder) -> Any:
        f = self.expr(e.func, env, b)
        if isinstance(f, Ref) and f.kind == "builtin":
            return self.builtin(f.name, e, env, b)
        args = [self.expr(a, env, b) for a in e.args]
        kwargs = {}
        for k in e.kwargs:
            if k.name in kwargs:
                raise error(f"argument '{k.name}' is given twice", k.span)
            kwargs[k.name] = self.expr(k.value, env, b)
        if isinstance(f, Ref):
            if f.kind == "function":
                return self.call_function(f.name, args, kwargs, e.span, b)
            if f.kind == "distribution":
                spans = [a.span for a in e.args] + [k.value.span for k in e.kwargs]
                return self.distribution(f.name, args, kwargs, e.span, spans)
            if f.kind == "gen":
                spans = [a.span for a in e.args] + [k.value.span for k in e.kwargs]
                for v, sp in zip([*args, *kwargs.values()], spans):
                    self.estimate_input("an argument of a generative function", v, sp)
                return self.gen_value(f.name, args, kwargs, e.span)
            if f.kind in ("fn", "objective"):
                return self.inline_call(f.name, args, kwargs, e.span, b)
        raise error(f"{describe(f)} cannot be called", e.func.span)

    def inline_call(self, name: str, args, kwargs, span, b: Builder) -> Any:
        decl = self.decls[name]
        if name in self.stack:
            raise error(f"'{name}' calls itself; recursion is not supported", span)
        bound = self.bind_decl_args(decl, args, kwargs, span)
        self.stack.append(name)
        try:
            result = self.lower_body(decl, dict(bound), b)
        finally:
            self.stack.pop()
        if result is None:
            raise error(f"'{name}' returns no value", span)
        return result

    def builtin(self, name: str, e: ast.Call, env: dict, b: Builder) -> Any:
        if name in COMBINATORS:
            return self.combinator(name, e, env, b)
        args = [self.expr(a, env, b) for a in e.args]
        if e.kwargs:
            raise error(f"{name}() takes no keyword arguments", e.kwargs[0].span)
        want = {"size": 1, "shape": 1, "ndim": 1, "sim": 1, "rsim": 1, "density": 2, "retval": 1,
                "detach": 1}[name]
        if len(args) != want:
            raise error(f"{name}() takes {want} argument{'s' if want > 1 else ''} but "
                        f"{len(args)} were given", e.span)
        if name in ("size", "shape", "ndim"):
            v = args[0]
            if is_static_number(v):
                v = literal(v)
            t = type_of(v)
            if not isinstance(t, ArrayType):
                raise error(f"{name}() needs an array, got {describe(args[0])}", e.span)
            return {"size": t.size, "shape": tuple(t.shape), "ndim": t.ndim}[name]
        if name == "retval":
            t = args[0]
            if not (isinstance(t, Var) and isinstance(t.type, TraceType)):
                raise error(f"retval() needs a trace, got {describe(t)}", e.span)
            if t.type.retval is None:
                return ()
            leaves = tree_leaves(t.type.retval)
            outs = b.emit("trace_retval", [Var(lt, "ret") for lt in leaves], [t], {}, span=e.span)
            return tree_unflatten(t.type.retval, outs)
        if name == "density" and isinstance(args[0], DistValue):
            return self.distribution_density(args[0], args[1], e.args[1].span, b)
        if name == "detach":
            if self.current_decl.kind == "gen":
                raise error("detach() belongs in objectives, where it holds a generative "
                            "function's parameters constant", e.span)
            if not is_generative(args[0]):
                raise error(f"detach() needs a generative function, got {describe(args[0])}",
                            e.args[0].span)
            return self.detach_value(args[0], e.span)
        if self.current_decl.kind == "gen":
            raise error(f"{name}() belongs in objectives; a generative function draws with '~'",
                        e.span)
        if self.current_decl.kind == "objective" and not b.inside(("expect",)):
            raise error(f"{name}() draws or scores random choices; in an objective it belongs "
                        "inside 'expect { ... }'", e.span)
        g = args[0]
        if not is_generative(g):
            raise error(f"{name}() needs a generative function, got {describe(g)}", e.args[0].span)
        if name in ("sim", "rsim"):
            if getattr(g, "observations", ()):
                raise error(f"{name}() of a conditioned program: there is no sampler for a "
                            "posterior", e.span, help="simulate the unconditioned model, or use "
                                                      "the conditioned one as a target in density()")
            return self.emit_sim(g, b, e.span, reparam_only=name == "rsim")
        trace = args[1]
        if isinstance(trace, dict):  # density(g, {x: 1.0}): a trace from a record of values
            trace = self.record_trace(trace, e.args[1].span, b)
        if not (isinstance(trace, Var) and isinstance(trace.type, TraceType)):
            raise error(f"density() needs a trace as its second argument, got {describe(trace)}",
                        e.args[1].span)
        return self.emit_density(g, trace, b, e.span)

    def emit_sim(self, g, b: Builder, span, reparam_only: bool = False) -> tuple:
        from .passes.addresses import trace_type  # a pure IR analysis

        if not isinstance(g, GenValue):
            return self.combinator_sim(g, b, span, reparam_only)
        fn = self.specialise(g)
        ttype = trace_type(fn, self.functions, span)
        ttype = TraceType(ttype.fields, getattr(fn, "retval_tree", None))
        attrs = {**_callee(fn, g), "require": "reparam"} if reparam_only else _callee(fn, g)
        t, lp = b.emit("sim", [Var(ttype, "trace"), Var(REAL, "logp")],
                       [v for _, v in g.dynamic], attrs, span=span)
        return (t, lp)

    def emit_generate(self, g: GenValue, given: Var, b: Builder, span, weight: bool = False,
                      reparam_only: bool = False) -> tuple:
        """Simulate ``g`` with the choices in ``given`` fixed: (full trace, log joint), or,
        with ``weight``, (full trace, log density of the given choices alone): the
        importance weight of the drawn ones, which are a proposal's draws."""
        from .passes.addresses import trace_type

        fn = self.specialise(g)
        ttype = trace_type(fn, self.functions, span)
        ttype = TraceType(ttype.fields, getattr(fn, "retval_tree", None))
        attrs = _callee(fn, g)
        if weight:
            attrs["scored"] = tuple(sorted(given.type.addresses))
        if reparam_only:
            attrs["require"] = "reparam"
        t, lp = b.emit("generate", [Var(ttype, "trace"), Var(REAL, "logp")],
                       [given] + [v for _, v in g.dynamic], attrs, span=span)
        return (t, lp)

    def emit_density(self, g, trace: Var, b: Builder, span,
                     scored: tuple[str, ...] | None = None) -> Var:
        """``log g(trace)``; with ``scored``, only the choices at those addresses (and
        factors) are scored, the others only read from the trace."""
        if not isinstance(g, GenValue):
            return self.combinator_density(g, trace, b, span)
        fn = self.specialise(g)
        observed = tuple(a for a, _ in g.observations)
        attrs = {**_callee(fn, g), "observed": observed}
        if scored is not None:
            attrs["scored"] = tuple(scored)
        return b.emit1("density", REAL, [trace] + [v for _, v in g.observations]
                       + [v for _, v in g.dynamic], attrs, span=span, hint="logp")

    def distribution_density(self, d: DistValue, x, span, b: Builder) -> Var:
        """``density(normal(mu, s), x)``: the log density of ``x`` summed over its elements,
        with the library row's exact derivatives (the ``logpdf`` a choice is scored by)."""
        x = self.as_array(x, span, f"the value scored by {d.name}")
        want = d.value_type
        if not _broadcasts_to(want.shape, x.type.shape):
            raise error(f"density({d.name}(...), x) scores values of shape "
                        f"{list(want.shape)} (or an array they broadcast to), got {x.type!r}",
                        span, help="the value's trailing axes must match the distribution's")
        if x.type.dtype != want.dtype:
            x = b.emit1("fn", ArrayType(want.dtype, x.type.shape), [x], {"name": "int" if want.dtype == "int32" else "float"},
                        span=span)
        args = [a if isinstance(a, (Var, Lit)) else literal(a) for a in d.args]
        return b.emit1("logpdf", REAL, [x] + args, {"dist": d.name, "form": d.form}, span=span,
                       hint="logp")

    def record_trace(self, record: dict, span, b: Builder, retval_tree=None,
                     retval: list | None = None) -> Var:
        """The trace holding a record's values at its field names (addresses), and a
        return value (``retval``, the leaves of the type tree ``retval_tree``)."""
        addresses = tuple(sorted(record))
        values = [self.as_array(record[a], span, f"the value at '{a}'") for a in addresses]
        ttype = TraceType(tuple((a, v.type) for a, v in zip(addresses, values)), retval_tree)
        return b.emit1("make_trace", ttype, values + list(retval or []),
                       {"addresses": addresses}, span=span, hint="trace")

    def trace_get(self, t: Var, address: str, span, b: Builder) -> Var:
        ft = t.type.field(address)
        if ft is None:
            prefix = address + "/"
            sub = tuple((a[len(prefix):], ty) for a, ty in t.type.fields if a.startswith(prefix))
            if not sub:
                raise error(f"the trace has no address '{address}'", span,
                            help=did_you_mean(address, t.type.addresses)
                            or f"its addresses: {', '.join(t.type.addresses) or 'none'}")
            ft = TraceType(sub)
        return b.emit1("trace_get", ft, [t], {"address": address}, span=span,
                       hint=address.replace("/", "_"))

    def distribution(self, name: str, args: list, kwargs: dict, span,
                     spans: list | None = None) -> DistValue:
        dist = self.library.distributions[name]
        form = _choose_form(dist, args, kwargs)
        if form is None:
            forms = " or ".join(f"{name}({', '.join(f)})" for f in dist.forms)
            bad = [k for k in kwargs if all(k not in f for f in dist.forms)]
            msg = (f"{name}() has no parameter '{bad[0]}'" if bad
                   else f"{name}() takes {len(dist.forms[0])} parameters, "
                        f"got {len(args) + len(kwargs)}")
            names = [n for f in dist.forms for n in f]
            help_ = (did_you_mean(bad[0], names) if bad else None) or f"use {forms}"
            raise error(msg, span, help=help_)
        values = list(args) + [kwargs[k] for k in form[len(args):]]
        if spans is not None:  # in the order of the form, like values
            by_keyword = dict(zip(kwargs, spans[len(args):]))
            spans = spans[:len(args)] + [by_keyword[k] for k in form[len(args):]]
        for i, (pname, v) in enumerate(zip(form, values)):
            problem = literal_problem(dist, form, pname, v)
            if problem is not None:
                raise error(problem, spans[i] if spans else span)
            self.estimate_input("a distribution's parameter", v, spans[i] if spans else span)
        atoms = []
        for pname, v in zip(form, values):
            if is_static_number(v):
                atoms.append(float(v) if not isinstance(v, bool)
                             and pname not in dist.integer_params else v)
            else:
                atoms.append(self.as_array(v, span, f"parameter '{pname}' of {name}"))
        try:
            vt = dist.value_type(form, [a.type if isinstance(a, (Var, Lit)) else a for a in atoms])
        except ValueError as ex:
            raise error(str(ex), span) from None
        return DistValue(name, form, tuple(atoms), vt, span)

    def sources(self, v) -> frozenset:
        """The ``expect`` s a lowered value's estimate depends on (lower_estimates.py)."""
        if isinstance(v, Var):
            return self.estimated.get(v, EMPTY)
        if isinstance(v, (tuple, list)):
            return EMPTY.union(*(self.sources(x) for x in v))
        if isinstance(v, dict):
            return EMPTY.union(*(self.sources(x) for x in v.values()))
        return EMPTY

    def mark(self, out, sources: frozenset):
        """Record that ``out`` (a Var) estimates ``sources``; return it."""
        if sources and isinstance(out, Var):
            self.estimated[out] = sources
        return out

    def estimate_sources(self, name: str, bound: list, span) -> frozenset:
        """The sources of ``name(bound)`` (the arguments in parameter order), or a caret error.

        Estimated reals (values of ``expect``) stay unbiased under sums,
        differences, scaling by values that are not estimates, and products of
        independent estimates (lower_estimates.RULES). Anything else is
        rejected: E[f(X)] ≠ f(E[X]).
        """
        try:
            return combine(name, [self.sources(a) for a in bound])
        except NotUnbiased as ex:
            raise error(ex.message, span, help=ex.help) from None

    def estimate_input(self, what: str, value, span) -> None:
        """Reject an estimate where a random choice would depend on it (lower_estimates)."""
        try:
            as_input(what, self.sources(value))
        except NotUnbiased as ex:
            raise error(ex.message, span, help=ex.help) from None

    def call_function(self, name: str, args: list, kwargs: dict, span, b: Builder) -> Any:
        f = self.library.functions.get(name) or self.externs.get(name)
        sources = EMPTY
        if any(self.sources(a) for a in [*args, *kwargs.values()]):
            try:
                bound = bind_arguments(name, f.params, args, kwargs)
            except ValueError:  # _call_function reports it
                bound = None
            if bound is not None:
                sources = self.estimate_sources(name, [bound[p.name] for p in f.params], span)
        out = self._call_function(name, args, kwargs, span, b)
        if name in ("add", "sub") and len(args) == 2 and isinstance(out, Var):
            self.shift_range(out, name, args)
        return self.mark(out, sources)

    def shift_range(self, out: Var, name: str, args: list) -> None:
        """``i + c``, ``c + i``, ``i - c`` and ``c - i`` of a known index range and a static int."""
        a, c = args
        flipped = not isinstance(a, Var)
        if flipped:
            a, c = c, a
        known = self.index_ranges.get(a) if isinstance(a, Var) else None
        if known is None or isinstance(c, bool) or not isinstance(c, int):
            return
        lo, hi, *where = known
        if name == "add":
            self.index_ranges[out] = (lo + c, hi + c, *where)
        elif flipped:  # c - i
            self.index_ranges[out] = (c - hi, c - lo, *where)
        else:
            self.index_ranges[out] = (lo - c, hi - c, *where)

    def _call_function(self, name: str, args: list, kwargs: dict, span, b: Builder) -> Any:
        f = self.library.functions.get(name) or self.externs.get(name)
        try:
            bound = bind_arguments(name, f.params, args, kwargs)
        except ValueError as ex:
            raise error(str(ex), span) from None
        arrays: list = []
        types: dict[str, Any] = {}
        attrs: dict[str, Any] = {"name": name}
        for spec in f.params:
            v = bound[spec.name]
            if spec.static:
                attrs[spec.name] = self.static_value(v, span, f"argument '{spec.name}' of {name}()")
                types[spec.name] = attrs[spec.name]
            elif spec.variadic:
                items = [self.array_arg(x, span, name) for x in v]
                arrays.extend(items)
                attrs["count"] = len(items)
                types[spec.name] = tuple(_arg_type(x) for x in items)
            else:
                a = self.array_arg(v, span, name)
                arrays.append(a)
                types[spec.name] = _arg_type(a)
        try:
            rtype = f.result_type(types)
        except ValueError as ex:
            raise error(str(ex), span) from None
        atoms = [literal(a) if is_static_number(a) else a for a in arrays]
        return b.emit1("fn", rtype, atoms, attrs, span=span)

    # ------------------------------------------------------------ value helpers

    def array_arg(self, v, span, fname: str):
        if is_static_number(v):
            return v
        if isinstance(v, (Var, Lit)) and isinstance(v.type, ArrayType):
            return v
        if isinstance(v, tuple) and all(is_static_number(x) for x in v):
            raise error(f"{fname}() got a tuple; use an array literal [..] for an array", span)
        raise error(f"{fname}() needs an array, got {describe(v)}", span)

    def as_atom(self, v, span):
        if isinstance(v, (Var, Lit)):
            return v
        if is_static_number(v):
            return literal(v)
        raise error(f"expected an array, got {describe(v)}", span)

    def as_array(self, v, span, what: str):
        if is_static_number(v):
            return literal(v)
        if isinstance(v, (Var, Lit)) and isinstance(v.type, ArrayType):
            return v
        raise error(f"{what} must be an array, got {describe(v)}", span)

    def static_value(self, v, span, what: str):
        if isinstance(v, (Var, Lit)) and not isinstance(v, Lit):
            raise error(f"{what} must be known when the program is compiled, but it is traced",
                        span)
        if isinstance(v, Lit):
            return v.value
        return v

    def static_size(self, v, span, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, (Var, Lit)):
                raise error(f"the size of {what} must be a static int (known when the program "
                            "is compiled), but it is traced", span,
                            help="pass sizes as 'int' arguments, or use size(x) of an array")
            raise error(f"the size of {what} must be an int, got {describe(v)}", span)
        if v < 0:
            raise error(f"the size of {what} must not be negative, got {v}", span)
        return v


def literal_problem(dist, form: tuple, name: str, value) -> str | None:
    """What is wrong with a distribution's parameter known at compile time (``normal``'s
    scale 0.0), from the row's ``check_literal``; None when fine or not a number."""
    check = getattr(dist, "check_literal", None)
    if check is None or not is_static_number(value):
        return None
    return check(form, name, value)


def _choose_form(dist, args: list, kwargs: dict):
    for form in dist.forms:
        if len(args) + len(kwargs) != len(form):
            continue
        rest = form[len(args):]
        if set(kwargs) == set(rest):
            return form
    return None


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` (NumPy's rule)."""
    if len(shape) > len(target):
        return False
    return all(a in (1, t) for a, t in zip(reversed(shape), reversed(target)))


def _arg_type(a):
    if is_static_number(a):
        return a
    return a.type


def _static_ints(e) -> list[int]:
    """The ints of an array literal of int literals (``[0, -1, 2]``, nested), else []."""
    if isinstance(e, ast.ArrayLit):
        out = [_static_ints(x) for x in e.items]
        return [v for vs in out for v in vs] if all(out) else []
    if isinstance(e, ast.Unary) and e.op == "neg":
        return [-v for v in _static_ints(e.operand)]
    if isinstance(e, ast.Literal) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return [e.value]
    return []


def _clip_slice(k: int, n: int) -> int:
    if k < 0:
        k += n
    return min(max(k, 0), n)


def _callee(fn, g: GenValue) -> dict:
    """The attributes naming a call's model; ``detached`` when made through ``detach(g)``."""
    return {"callee": fn.name, "detached": True} if g.detached else {"callee": fn.name}
