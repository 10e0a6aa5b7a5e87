"""Loaded programs and the Python objects for their declarations.

``ppl.load(path)`` / ``ppl.compile(text)`` parse and check a program and
return a :class:`Module`. Its attributes are the declarations: calling a
``gen`` gives a :class:`GenerativeFunction` bound to its arguments (ints and
bools are static, arrays and floats are traced), which can initialise its
parameters, simulate, score a trace, and be conditioned with ``|``. Calling
a ``fn`` runs it; calling an ``objective`` gives an
:class:`~ppl.objective.Objective`.

    >>> import ppl, jax
    >>> m = ppl.compile('''
    ... gen coin(n: int) {
    ...     p ~ beta(2.0, 2.0)
    ...     plate i in n { flips ~ bernoulli(p) }
    ... }''')
    >>> trace, logp = m.coin(5).simulate(jax.random.PRNGKey(0))
    >>> trace["flips"].shape
    (5,)

Each entry point (simulate, density, an objective) is lowered, passed
through the IR pipeline and ``jax.jit``-compiled once per signature (the
static arguments and the shapes and dtypes of the traced ones), then cached.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .compiler import ast, passes
from .compiler.backend.standard import evaluate, init_params
from .compiler.check import check_program
from .compiler.diagnostics import DataError, Diagnostic, PPLError, did_you_mean
from .compiler.ir import Program, Var, walk
from .compiler.lower import Builder, Lowerer
from .compiler.parser import parse
from .compiler.types import ArrayType, TraceType, tree_leaves, tree_unflatten
from .compiler.values import GenValue
from .trace import Trace


def load(path: str | os.PathLike, externs: dict[str, Callable] | None = None) -> "Module":
    """Load a program from a ``.ppl`` file. ``externs`` are Python functions it may call."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise DataError(Diagnostic(f"cannot read {path}: {e.strerror}")) from None
    return compile(text, name=path, externs=externs)


def compile(source: str, name: str = "<string>", externs: dict[str, Callable] | None = None
            ) -> "Module":  # noqa: A001 - mirrors the builtin's role
    """Compile program text into a :class:`Module`."""
    return Module(source, name, externs or {})


def standard_library(externs: dict[str, Callable] | None = None):
    from .stdlib.library import STANDARD

    return STANDARD.with_externs(externs or {}) if externs else STANDARD


def _stdlib_decls() -> tuple[ast.Decl, ...]:
    from .stdlib.library import STANDARD

    decls: list[ast.Decl] = []
    for module_name, text in STANDARD.sources.items():
        decls.extend(parse(text, f"<stdlib {module_name}>").decls)
    return tuple(decls)


class Module:
    """A checked program: attribute access gives its declarations."""

    def __init__(self, source: str, name: str, externs: dict[str, Callable]):
        self.source_name = name
        self.library = standard_library(externs)
        self.program = parse(source, name)
        self.stdlib_decls = _stdlib_decls()
        check_program(self.program, self.library, self.stdlib_decls)
        self.lowerer = Lowerer(self.program, self.library, extra_decls=self.stdlib_decls)
        self._entries: dict[Any, "Entry"] = {}

    @property
    def declarations(self) -> dict[str, ast.Decl]:
        return {d.name: d for d in self.program.decls}

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("program", "lowerer", "library", "stdlib_decls"):
            raise AttributeError(name)
        decls = {d.name: d for d in self.program.decls}
        if name not in decls:
            raise AttributeError(f"the program has no declaration '{name}'"
                                 + (f"; {did_you_mean(name, decls)}" if did_you_mean(name, decls)
                                    else f" (it declares: {', '.join(decls) or 'nothing'})"))
        decl = decls[name]
        if decl.kind == "gen":
            return lambda *args, **kwargs: GenerativeFunction(self, name, args, kwargs)
        if decl.kind == "objective":
            from .objective import Objective

            return lambda *args, **kwargs: Objective(self, name, args, kwargs)
        return lambda *args, **kwargs: self.call_fn(name, args, kwargs)

    def __dir__(self):
        return list(super().__dir__()) + [d.name for d in self.program.decls]

    # ---------------------------------------------------------- entries

    def entry(self, key: Any, build: Callable[["Inputs", Builder], list], inputs: "Inputs"
              ) -> "Entry":
        """The compiled entry for ``key``, building it with ``build`` on first use."""
        if key not in self._entries:
            b = Builder("function")
            b.params = list(inputs.vars)
            b.defined.update(inputs.vars)
            self.lowerer.current_decl = _ENTRY_DECL
            outs = build(inputs, b)
            self._entries[key] = Entry.build(self, "entry", b, outs)
        return self._entries[key]

    def ir(self, key, build, inputs, after: str | None = None) -> Program:
        b = Builder("function")
        b.params = list(inputs.vars)
        b.defined.update(inputs.vars)
        self.lowerer.current_decl = _ENTRY_DECL
        outs = build(inputs, b)
        return passes.run(_program(self, "entry", b, outs), after=after)

    def objective(self, name: str, args: tuple, kwargs: dict):
        """The objective ``name`` (of this program or the standard library) applied to args."""
        from .objective import Objective

        if name not in self.lowerer.decls or self.lowerer.decls[name].kind != "objective":
            raise DataError(Diagnostic(f"there is no objective '{name}'"))
        return Objective(self, name, tuple(args), dict(kwargs))

    def call_fn(self, name: str, args, kwargs, params: dict | None = None, key=None):
        """Run the ``fn`` ``name`` (of the program or the standard library) on arguments;
        ``params`` and ``key`` serve a fn that simulates families (``sim``)."""
        inputs = Inputs()
        a = [inputs.value(x, f"arg{i}") for i, x in enumerate(args)]
        kw = {k: inputs.value(v, k) for k, v in kwargs.items()}
        structure: list = []

        def build(inp, b):
            result = self.lowerer.inline_call(name, a, kw, None, b)
            structure.append(result)
            leaves = tree_leaves(result)
            return [self.lowerer.as_atom(x, None) for x in leaves]

        entry = self.entry(("fn", name, inputs.signature()), build, inputs)
        if structure:
            entry.structure = structure[0]
        outs = entry(params, key, inputs.arrays)
        return tree_unflatten(entry.structure, list(outs))


_ENTRY_DECL = ast.Decl("objective", "<entry>", (), ast.Block((), None), None, None)


def format_call(name: str, args: tuple, kwargs: dict) -> str:
    """``name(10, <array>, k=3)``: static values shown, arrays abbreviated."""
    def show(v):
        return "<array>" if hasattr(v, "shape") or isinstance(v, (list, float)) else repr(v)

    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _program(module: Module, name: str, b: Builder, outs: list) -> Program:
    """The entry ``name`` with the functions and parameters it reaches."""
    from .compiler.ir import Function, Region

    fn = Function(name, Region(b.params, b.eqns, outs), "entry")
    available = module.lowerer.functions
    functions, todo = {name: fn}, [fn]
    while todo:
        for e in walk(todo.pop().body):
            callee = e.attrs.get("callee") if e.op in ("call", "sim", "density", "generate") else None
            if callee is not None and callee not in functions:
                functions[callee] = available[callee]
                todo.append(available[callee])
    used = {e.attrs["path"] for f in functions.values() for e in walk(f.body) if e.op == "param"}
    params = {p: info for p, info in module.lowerer.params.items() if p in used}
    return Program(functions, name, params)


@dataclass
class Entry:
    """One compiled entry point: its final IR and its jitted function."""

    program: Program
    run: Callable
    out_types: list
    structure: Any = None
    library: Any = None

    @classmethod
    def build(cls, module: Module, name: str, b: Builder, outs: list) -> "Entry":
        program = passes.run(_program(module, name, b, outs))
        used = {e.attrs["path"] for e in walk(program.functions[program.entry].body)
                if e.op == "param"}
        program.params = {p: info for p, info in module.lowerer.params.items() if p in used}
        library = module.library

        @jax.jit
        def run(params, key, inputs):
            return evaluate(program, library, params, key, inputs)

        return cls(program, run, [o.type for o in outs], library=library)

    def __call__(self, params, key, arrays):
        params = check_params(self.program, params, self.library)
        if key is None:
            key = jax.random.PRNGKey(0)
        return self.run(params, key, list(arrays))


def check_params(program: Program, params, library=None) -> dict:
    """The parameters the program needs, taken from ``params`` (a dict by path).

    With the ``library``, each value's shape is checked against the parameter's
    unconstrained shape (what ``init`` returns), so a wrong array is a clear error.
    """
    if not program.params:
        return {}
    if params is None:
        paths = ", ".join(program.params)
        raise DataError(Diagnostic(f"this program has parameters ({paths}) but no params were given",
                                   help="pass params=obj.init(key), or the params of a fit"))
    if not isinstance(params, dict):
        params = dict(params)
    out = {}
    for path, info in program.params.items():
        if path not in params:
            raise DataError(Diagnostic(f"params has no value for '{path}'",
                                       help=did_you_mean(path, params)))
        value = params[path]
        if library is not None:
            want = _unconstrained_shape(library, info.constraint, info.type.shape)
            got = tuple(np.shape(value))
            if got != want:
                raise DataError(Diagnostic(
                    f"params['{path}'] has shape {list(got)}, but the parameter's unconstrained "
                    f"value has shape {list(want)}",
                    help="params hold unconstrained values, as init() and fit() return them"))
        out[path] = value
    return out


@functools.lru_cache(maxsize=None)
def _unconstrained_shape(library, constraint: tuple, shape: tuple) -> tuple:
    return tuple(library.constraint(constraint).unconstrained_shape(shape))


class Inputs:
    """Arrays passed from Python into an entry, each an input variable of its IR."""

    def __init__(self):
        self.vars: list[Var] = []
        self.arrays: list[Any] = []
        self.sig: list[Any] = []

    def add(self, x, hint: str) -> Var:
        arr = as_array(x, hint)
        t = ArrayType(str(arr.dtype), tuple(arr.shape))
        v = Var(t, hint.replace("/", "_"))
        self.vars.append(v)
        self.arrays.append(arr)
        self.sig.append(("array", t))
        return v

    def add_trace(self, trace: Trace, hint: str = "trace") -> Var:
        values = {a: as_array(v, a) for a, v in trace.values_by_address.items()}
        t = TraceType(tuple((a, ArrayType(str(v.dtype), tuple(v.shape))) for a, v in values.items()))
        v = Var(t, hint)
        self.vars.append(v)
        self.arrays.append((values, ()))
        self.sig.append(("trace", t))
        return v

    def value(self, x, hint: str):
        if isinstance(x, (bool, int, np.integer)) and not isinstance(x, np.ndarray):
            self.sig.append(("static", type(x).__name__, x))
            return x if isinstance(x, bool) else int(x)
        if isinstance(x, GenerativeFunction):
            self.sig.append(("gen", x.name))
            return x.gen_value(self)
        if isinstance(x, tuple):
            return tuple(self.value(v, f"{hint}{i}") for i, v in enumerate(x))
        if isinstance(x, dict):
            return {k: self.value(v, k) for k, v in x.items()}
        return self.add(x, hint)

    def signature(self) -> tuple:
        return tuple(self.sig)


def as_array(x, what: str):
    """A JAX array of dtype float32, int32 or bool (64-bit inputs are narrowed)."""
    if isinstance(x, Trace):
        raise DataError(Diagnostic(f"{what} is a trace, where an array was expected"))
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError):
        raise DataError(Diagnostic(f"{what} must be an array or a number, got "
                                   f"{type(x).__name__}")) from None
    if jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.float32)
    elif arr.dtype == jnp.bool_:
        pass
    elif jnp.issubdtype(arr.dtype, jnp.integer):
        arr = arr.astype(jnp.int32)
    else:
        raise DataError(Diagnostic(f"{what} has dtype {arr.dtype}, which a program cannot use"))
    return arr


class GenerativeFunction:
    """A generative function applied to its arguments, maybe conditioned.

    ``init(key)`` gives its parameters; ``simulate(key, params)`` returns
    ``(trace, logp)``; ``density(trace, params)`` returns ``logp``;
    ``g | {"y": data}`` conditions it on observations.
    """

    def __init__(self, module: Module, name: str, args: tuple, kwargs: dict,
                 observations: dict | None = None):
        self.module = module
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.observations = dict(observations or {})

    def __repr__(self) -> str:
        obs = f" | {{{', '.join(self.observations)}}}" if self.observations else ""
        return format_call(self.name, self.args, self.kwargs) + obs

    def __or__(self, observations: dict) -> "GenerativeFunction":
        if not isinstance(observations, dict):
            raise DataError(Diagnostic("condition with a dict of observations, like "
                                       "g | {\"y\": data}"))
        both = dict(self.observations)
        for k, v in observations.items():
            if k in both:
                raise DataError(Diagnostic(f"address '{k}' is observed twice"))
            both[k] = v
        return GenerativeFunction(self.module, self.name, self.args, self.kwargs, both)

    def gen_value(self, inputs: Inputs) -> GenValue:
        args = [inputs.value(x, f"{self.name}_arg{i}") for i, x in enumerate(self.args)]
        kwargs = {k: inputs.value(v, k) for k, v in self.kwargs.items()}
        gv = self.module.lowerer.gen_value(self.name, args, kwargs)
        obs = tuple((a, inputs.add(v, a)) for a, v in sorted(self.observations.items()))
        for a, _ in obs:
            inputs.sig.append(("obs", a))
        return GenValue(gv.decl, gv.static, gv.dynamic, obs, None)

    # ---------------------------------------------------------- entries

    def _simulate_entry(self):
        inputs = Inputs()
        gv = self.gen_value(inputs)
        if gv.observations:
            raise DataError(Diagnostic(
                f"cannot simulate {self!r}: it is conditioned on observations, and there is no "
                "sampler for a posterior", help="simulate the unconditioned model instead"))

        def build(inp, b):
            t, lp = self.module.lowerer.emit_sim(gv, b, None)
            return [t, lp]

        return self.module.entry(("simulate", self.name, inputs.signature()), build, inputs), inputs

    def _simulate_entry_unconditioned(self):
        return GenerativeFunction(self.module, self.name, self.args, self.kwargs)._simulate_entry()

    def init(self, key) -> dict[str, Any]:
        """Initial (unconstrained) values of the parameters it reaches, by path."""
        entry, _ = self._simulate_entry()
        return init_params(entry.program, self.module.library, key)

    def simulate(self, key, params: dict | None = None) -> tuple[Trace, Any]:
        """Run forward: a trace of every choice and its log density."""
        entry, inputs = self._simulate_entry()
        (values, retval), logp = entry(params, key, inputs.arrays)
        ttype: TraceType = entry.out_types[0]
        ret = tree_unflatten(ttype.retval, list(retval)) if ttype.retval not in (None, ()) else None
        return Trace(values, ret), logp

    def sample(self, key, params: dict | None = None, n: int = 1000) -> Trace:
        """``n`` independent traces, stacked along a leading axis (one vmapped program)."""
        entry, inputs = self._simulate_entry()
        p = check_params(entry.program, params, self.module.library)
        keys = jax.random.split(key, n)
        (values, retval), _ = jax.vmap(lambda k: entry.run(p, k, list(inputs.arrays)))(keys)
        return Trace(values)

    def predictive(self, key, given: Trace, params: dict | None = None) -> Trace:
        """Posterior predictive draws: for each of the stacked traces in ``given`` (a
        leading sample axis, e.g. from ``family.sample``), run this model with those
        choices fixed and the others drawn. Returns stacked full traces."""
        if not isinstance(given, Trace):
            given = Trace(given)
        values = {a: as_array(v, a) for a, v in given.values_by_address.items()}
        sizes = {int(v.shape[0]) if v.ndim else None for v in values.values()}
        if len(sizes) != 1 or None in sizes:
            raise DataError(Diagnostic("predictive() needs traces stacked along a leading "
                                       "sample axis (e.g. from family.sample(key, params, n))"))
        n = sizes.pop()
        inputs = Inputs()
        tvar = inputs.add_trace(Trace({a: v[0] for a, v in values.items()}), "given")
        gv = self.gen_value(inputs)
        if gv.observations:
            raise DataError(Diagnostic("predictive() simulates the model, so it must not be "
                                       "conditioned; pass the unconditioned model"))

        def build(inp, b):
            return list(self.module.lowerer.emit_generate(gv, tvar, b, None))

        entry = self.module.entry(("generate", inputs.signature()), build, inputs)
        p = check_params(entry.program, params, self.module.library)
        rest = list(inputs.arrays[1:])
        keys = jax.random.split(key, n)
        (out, _), _ = jax.vmap(lambda k, v: entry.run(p, k, [(v, ())] + rest))(keys, values)
        return Trace(out)

    def density(self, trace: Trace | dict, params: dict | None = None):
        """The log density of a trace (with the observations, if conditioned)."""
        if not isinstance(trace, Trace):
            if not isinstance(trace, dict):
                raise DataError(Diagnostic(f"density() needs a Trace or a dict of values by "
                                           f"address, got {type(trace).__name__}"))
            trace = Trace(trace)
        inputs = Inputs()
        tvar = inputs.add_trace(trace)
        gv = self.gen_value(inputs)

        def build(inp, b):
            return [self.module.lowerer.emit_density(gv, tvar, b, None)]

        entry = self.module.entry(("density", self.name, inputs.signature()), build, inputs)
        return entry(params, None, inputs.arrays)[0]

    def ir(self, after: str | None = None) -> Program:
        """The IR of its entry after a pass (for inspection): simulate, or, for a
        conditioned function, the density of its latent choices."""
        inputs = Inputs()
        if self.observations:
            entry, _ = self._simulate_entry_unconditioned()
            tvar = inputs.add_trace(Trace({a: jnp.zeros(t.shape, t.dtype) for a, t in
                                           entry.out_types[0].fields if a not in self.observations}))
        gv = self.gen_value(inputs)

        def build(inp, b):
            if self.observations:
                return [self.module.lowerer.emit_density(gv, tvar, b, None)]
            return list(self.module.lowerer.emit_sim(gv, b, None))

        return self.module.ir(None, build, inputs, after)


__all__ = ["load", "compile", "Module", "GenerativeFunction", "Trace", "PPLError"]
