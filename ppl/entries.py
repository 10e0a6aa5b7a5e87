"""Entry points: the one seam between the Python API and the compiler.

Every call from Python into a program (``simulate``, ``density``,
``predictive``, a ``fn``, an objective's ``value`` and gradient) is an
*entry*. :class:`EntryPoints` owns the whole way from Python values to a
compiled function, in one place:

1. **inputs**: :class:`Inputs` turns the Python arguments into IR input
   variables (arrays, traces) or static values (ints, bools, generative
   functions), and gives their *signature*: a nested tuple naming every
   declaration, static value, keyword, record field, observed address and
   array type, so two calls share a signature only if they lower to the
   same program;
2. **lowering** into a fresh region builder (``emit(lowerer, builder)``);
3. **the passes** (``compiler.passes.run``; for objectives the ``adev``
   pass too, with the estimator overrides);
4. **parameter selection** (the parameters the final IR reads);
5. **jit**: the standard semantics, or for an objective ADEV's function
   (``value``) and its gradient (``value_and_grad``);
6. **the cache key**: ``(kind, declaration, signature, options)``, where
   :class:`Options` holds what else changes the program: the estimator
   overrides, the data scale N/B and which inputs are minibatched. They are
   arguments here, never state set on an objective.

    >>> import ppl, jax
    >>> m = ppl.compile("gen g(loc: real) { x ~ normal(loc, 1.0) }")
    >>> inputs = Inputs()
    >>> gv, sig = inputs.value(m.g(loc=0.5), "g")
    >>> sig
    ('gen', 'g', (), (('loc', ('array', real)),), ())
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .compiler import passes
from .compiler.backend.adev import objective_function
from .compiler.backend.standard import evaluate, init_params
from .compiler.diagnostics import DataError, Diagnostic, did_you_mean
from .compiler.ir import Function, Program, Region, Var, walk
from .compiler.lower import Builder, Lowerer
from .compiler.types import ArrayType, TraceType
from .compiler.values import GenValue
from .trace import Trace
from .jit import jit


class GenerativeArgument:
    """What :class:`Inputs` needs of a generative function passed from Python: its name
    and ``lower_into(inputs) -> (GenValue, signature)`` (ppl.module.GenerativeFunction)."""

    name: str

    def lower_into(self, inputs: "Inputs") -> tuple[GenValue, tuple]:  # pragma: no cover
        raise NotImplementedError


def merge_observations(current: dict, new) -> dict:
    """``g | new`` for a ``g`` already observing ``current``: both, each address once."""
    if not isinstance(new, dict):
        raise DataError(Diagnostic("condition with a dict of observations, like "
                                   "g | {\"y\": data}"))
    both = dict(current)
    for k, v in new.items():
        if k in both:
            raise DataError(Diagnostic(f"address '{k}' is observed twice"))
        both[k] = v
    return both


class Inputs:
    """Arrays passed from Python into an entry, each an input variable of its IR.

    ``value(x, hint)`` returns the compile-time value of a Python argument (a
    static int or bool, an input variable, a GenValue, a tuple or record of
    them) and its signature. Keyword arguments and record fields are bound by
    name: they enter in sorted order, and their names are in the signature.
    """

    def __init__(self, module: Any = None):
        self.module = module  # the program the entry belongs to (its gens must come from it)
        self.vars: list[Var] = []
        self.arrays: list[Any] = []

    def add(self, x, hint: str) -> Var:
        arr = as_array(x, hint)
        v = Var(ArrayType(str(arr.dtype), tuple(arr.shape)), hint.replace("/", "_"))
        self.vars.append(v)
        self.arrays.append(arr)
        return v

    def add_trace(self, trace: Trace, hint: str = "trace") -> Var:
        values = {a: as_array(v, a) for a, v in trace.values_by_address.items()}
        t = TraceType(tuple((a, ArrayType(str(v.dtype), tuple(v.shape))) for a, v in values.items()))
        v = Var(t, hint)
        self.vars.append(v)
        self.arrays.append((values, ()))
        return v

    def value(self, x, hint: str) -> tuple[Any, tuple]:
        if isinstance(x, (bool, int, np.integer, np.bool_)) and not isinstance(x, np.ndarray):
            if isinstance(x, (bool, np.bool_)):
                return bool(x), ("static", "bool", bool(x))
            return int(x), ("static", "int", int(x))
        if isinstance(x, GenerativeArgument):
            return x.lower_into(self)
        if isinstance(x, tuple) and x and all(isinstance(a, str) for a in x):
            return x, ("static", "names", x)  # static names (the addresses marginal keeps)
        if isinstance(x, tuple):
            items = [self.value(v, f"{hint}{i}") for i, v in enumerate(x)]
            return tuple(v for v, _ in items), ("tuple", tuple(s for _, s in items))
        if isinstance(x, dict):
            bad = [k for k in x if not isinstance(k, str)]
            if bad:
                raise DataError(Diagnostic(f"{hint}: a record's fields are named by strings, "
                                           f"got {bad[0]!r}"))
            items = {k: self.value(x[k], k) for k in sorted(x)}
            return ({k: v for k, (v, _) in items.items()},
                    ("record", tuple((k, s) for k, (_, s) in items.items())))
        v = self.add(x, hint)
        return v, ("array", v.type)

    def call(self, args: tuple, kwargs: dict, hint: str = "arg") -> tuple[list, dict, tuple]:
        """Positional and keyword arguments (keywords bound by name, in sorted order)."""
        a = [self.value(x, f"{hint}{i}") for i, x in enumerate(args)]
        kw = {k: self.value(kwargs[k], k) for k in sorted(kwargs)}
        sig = (tuple(s for _, s in a), tuple((k, s) for k, (_, s) in kw.items()))
        return [v for v, _ in a], {k: v for k, (v, _) in kw.items()}, sig


def format_call(name: str, args: tuple, kwargs: dict) -> str:
    """``name(10, <array>, k=3)``: static values shown, arrays abbreviated."""
    def show(v):
        return "<array>" if hasattr(v, "shape") or isinstance(v, (list, float)) else repr(v)

    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


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


def check_key(key, what: str = "key"):
    """``key`` if it is a JAX random key (``jax.random.PRNGKey(0)`` or ``jax.random.key(0)``)."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if dtype == jnp.uint32 and tuple(key.shape) == _raw_key_shape():
        return key
    got = (f"an array of dtype {dtype} and shape {list(key.shape)}" if dtype is not None
           else f"{type(key).__name__} {key!r}" if isinstance(key, (int, float)) else type(key).__name__)
    raise DataError(Diagnostic(f"{what} must be a JAX random key, got {got}",
                               help="make one with jax.random.PRNGKey(0) (or jax.random.key(0)), "
                                    "and split it for independent draws"))


@functools.lru_cache(maxsize=None)
def _raw_key_shape() -> tuple:
    return tuple(jax.random.PRNGKey(0).shape)


def check_initial_values(program: Program, values: dict) -> dict:
    """``values`` (a parameter init's unconstrained values) if every one is finite; an
    initialiser that gives a value outside its parameter's constraint (``-1.0`` for a
    ``real<lower=0>``) is an error at the parameter, never a NaN to start from."""
    bad = [path for path, v in values.items()
           if not isinstance(v, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(v)))]
    if not bad:
        return values
    info = program.params[bad[0]]
    what = {"lower": "a lower bound", "upper": "an upper bound", "interval": "bounds",
            "simplex": "the simplex",
            "corr_cholesky": "a Cholesky factor of a correlation matrix"}.get(
                info.constraint[0], f"the constraint {info.constraint}")
    raise DataError(Diagnostic(
        f"the initial value of parameter '{bad[0]}' is outside its constraint ({what}: "
        f"{_spell_constraint(info.constraint)}), so its unconstrained value is not finite"
        + (f"; so are {', '.join(repr(b) for b in bad[1:])}" if bad[1:] else ""),
        info.span, help="give it an initialiser inside the constraint (or none: the default "
                        "start is inside it)"))


def _spell_constraint(c: tuple) -> str:
    if c[0] == "lower":
        return f"> {c[1]}"
    if c[0] == "upper":
        return f"< {c[1]}"
    if c[0] == "interval":
        return f"in ({c[1]}, {c[2]})"
    return c[0]


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


@dataclass(frozen=True)
class Options:
    """What changes an objective's program besides its declaration and arguments.

    ``estimators``: sorted ``(pattern, estimator)`` overrides; ``data_scale``:
    N/B when the inputs numbered ``minibatched`` hold a batch of B of N data
    points (a plate reading them along its axis is scaled by N/B).
    """

    estimators: tuple[tuple[str, str], ...] = ()
    data_scale: float | None = None
    minibatched: frozenset[int] = frozenset()

    @classmethod
    def of(cls, estimators: dict | None = None, data_scale: float | None = None,
           minibatched=()) -> "Options":
        return cls(tuple(sorted((estimators or {}).items())),
                   None if data_scale is None else float(data_scale), frozenset(minibatched))


# What an entry lowers: ``emit(lowerer, builder) -> (output atoms, result structure)``.
Emit = Callable[[Lowerer, Builder], tuple[list, Any]]


@dataclass(eq=False)
class Entry:
    """One compiled entry point: its final IR, its jitted functions, its cache key.

    ``run(params, key, inputs) -> outputs`` (the standard semantics); for an
    objective, ``value(params, key, inputs)`` (ADEV's value) and
    ``value_and_grad`` (its ADEV gradient). ``init(key)`` gives the initial
    (unconstrained) parameters, in one compiled program rather than an XLA
    compile per operation.
    """

    key: tuple
    program: Program
    library: Any
    out_types: list
    structure: Any = None
    objective: bool = False
    run: Callable = field(init=False, repr=False)
    value: Callable | None = field(init=False, repr=False, default=None)
    value_and_grad: Callable | None = field(init=False, repr=False, default=None)
    init: Callable = field(init=False, repr=False)
    init_folded: Callable = field(init=False, repr=False)

    def __post_init__(self):
        program, library = self.program, self.library
        init = jit(lambda key: init_params(program, library, key))
        # init(fold_in(key, salt)) in the same program (fit's start: one compile, not two).
        folded = jit(
            lambda key, salt: init_params(program, library, jax.random.fold_in(key, salt)))
        self.init = lambda key: check_initial_values(program, init(key))
        self.init_folded = lambda key, salt: check_initial_values(program, folded(key, salt))
        if self.objective:
            f = objective_function(program, library)
            self.value = jit(f)
            self.value_and_grad = jit(jax.value_and_grad(f))
            self.run = lambda params, key, inputs: [self.value(params, key, inputs)]
        else:
            self.run = jit(lambda params, key, inputs: evaluate(program, library, params, key,
                                                                    inputs))

    def params(self, params) -> dict:
        return check_params(self.program, params, self.library)

    def __call__(self, params, key, arrays):
        key = jax.random.PRNGKey(0) if key is None else check_key(key)
        return self.run(self.params(params), key, list(arrays))


class EntryPoints:
    """The compiled entries of one module, built and cached by :meth:`get`."""

    def __init__(self, lowerer: Lowerer, library):
        self.lowerer = lowerer
        self.library = library
        self.entries: dict[tuple, Entry] = {}
        # Compiled functions built on entries (fit's chunk runners), by their own keys.
        self.runners: dict[tuple, Any] = {}

    @staticmethod
    def key(kind: str, name: str, signature: tuple, options: Options = Options()) -> tuple:
        return (kind, name, signature, options)

    def get(self, kind: str, name: str, signature: tuple, inputs: Inputs, emit: Emit,
            options: Options = Options()) -> Entry:
        """The entry ``kind`` of declaration ``name`` at ``signature``, built on first use."""
        key = self.key(kind, name, signature, options)
        entry = self.entries.get(key)
        if entry is None:
            program, out_types, structure = self._lower(inputs, emit, options)
            context = passes.Context(self.library, kind == "objective", options.estimators)
            program = self._select_params(passes.run(program, context=context))
            entry = Entry(key, program, self.library, out_types, structure, kind == "objective")
            self.entries[key] = entry
        return entry

    def program(self, kind: str, inputs: Inputs, emit: Emit, options: Options = Options(),
                after: str | None = None) -> Program:
        """The IR of an entry after pass ``after`` (for ``ppl ir`` and inspection; not cached)."""
        program, _, _ = self._lower(inputs, emit, options)
        context = passes.Context(self.library, kind == "objective", options.estimators)
        program = passes.run(program, after=after, context=context)
        # An objective shows the parameters its final IR reads; other entries those reachable.
        return self._select_params(program) if kind == "objective" else program

    # ---------------------------------------------------------- the steps

    def _lower(self, inputs: Inputs, emit: Emit, options: Options) -> tuple[Program, list, Any]:
        b = Builder("function")
        b.params = list(inputs.vars)
        b.defined.update(inputs.vars)
        # A minibatch fit's program (its N/B scaling constrains how exact sums are laid out).
        self.lowerer.minibatching = options.data_scale is not None
        try:
            outs, structure = emit(self.lowerer, b)
        finally:
            self.lowerer.minibatching = False
        fn = Function("entry", Region(b.params, b.eqns, outs), "entry")
        functions, todo = {"entry": fn}, [fn]
        available = self.lowerer.functions
        while todo:
            for e in walk(todo.pop().body):
                callee = (e.attrs.get("callee") if e.op in ("call", "sim", "density", "generate")
                          else None)
                if callee is not None and callee not in functions:
                    functions[callee] = available[callee]
                    todo.append(available[callee])
        scale = {}
        if options.data_scale is not None:
            for i in options.minibatched:
                if not isinstance(inputs.vars[i].type, ArrayType):
                    raise DataError(Diagnostic("a minibatched input must be an array"))
                scale[inputs.vars[i]] = options.data_scale
        used = {e.attrs["path"] for f in functions.values() for e in walk(f.body)
                if e.op == "param"}
        params = {p: info for p, info in self.lowerer.params.items() if p in used}
        return Program(functions, "entry", params, scale), [o.type for o in outs], structure

    def _select_params(self, program: Program) -> Program:
        used = {e.attrs["path"] for e in walk(program.functions[program.entry].body)
                if e.op == "param"}
        program.params = {p: info for p, info in self.lowerer.params.items() if p in used}
        return program


__all__ = ["EntryPoints", "Entry", "Inputs", "Options", "GenerativeArgument", "as_array",
           "check_key", "check_params", "format_call"]
