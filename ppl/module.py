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

Each entry point (simulate, density, predictive, a fn, an objective) is
built by the module's :class:`~ppl.entries.EntryPoints` (entries.py): lowered,
passed through the IR pipeline and ``jax.jit``-compiled once per signature
(the declarations, static arguments, keyword and field names, observed
addresses, and the shapes and dtypes of the traced values), then cached.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .compiler import ast
from .compiler.check import check_program
from .compiler.diagnostics import DataError, Diagnostic, PPLError, did_you_mean
from .compiler.ir import Program, call_prefix
from .compiler.lower import Lowerer
from .compiler.parser import parse
from .compiler.passes.addresses import trace_type
from .compiler.types import TraceType, tree_leaves, tree_unflatten
from .compiler.values import GenValue
from .combinators import Auto, Marginal, Normalize
from .entries import (EntryPoints, GenerativeArgument, Inputs, as_array, check_key, format_call,
                      merge_observations)
from .objective import Objective
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


_STDLIB_DECLS: tuple[ast.Decl, ...] | None = None


def _stdlib_decls() -> tuple[ast.Decl, ...]:
    """The standard library's declarations (parsed once per process)."""
    global _STDLIB_DECLS
    if _STDLIB_DECLS is None:
        from .stdlib.library import STANDARD

        decls: list[ast.Decl] = []
        for module_name, text in STANDARD.sources.items():
            decls.extend(parse(text, f"<stdlib {module_name}>").decls)
        _STDLIB_DECLS = tuple(decls)
    return _STDLIB_DECLS


class Module:
    """A checked program: attribute access gives its declarations."""

    def __init__(self, source: str, name: str, externs: dict[str, Callable]):
        self.source_name = name
        self.library = standard_library(externs)
        self.program = parse(source, name)
        # An extern named like a standard-library declaration (an "mlp") is the program's.
        self.stdlib_decls = tuple(d for d in _stdlib_decls() if d.name not in self.library.functions)
        check_program(self.program, self.library, self.stdlib_decls)
        self.lowerer = Lowerer(self.program, self.library, extra_decls=self.stdlib_decls)
        self.entries = EntryPoints(self.lowerer, self.library)

    @property
    def declarations(self) -> dict[str, ast.Decl]:
        return {d.name: d for d in self.program.decls}

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("program", "lowerer", "library", "stdlib_decls",
                                            "entries"):
            raise AttributeError(name)
        decls = {d.name: d for d in self.program.decls}
        if name not in decls:
            raise AttributeError(f"the program has no declaration '{name}'"
                                 + (f"; {did_you_mean(name, decls)}" if did_you_mean(name, decls)
                                    else f" (it declares: {', '.join(decls) or 'nothing'})"))
        decl = decls[name]
        if decl.kind == "gen":
            return GenDeclaration(self, name)
        if decl.kind == "objective":
            return lambda *args, **kwargs: Objective(self, name, args, kwargs)
        return lambda *args, **kwargs: self.call_fn(name, args, kwargs)

    def __dir__(self):
        return list(super().__dir__()) + [d.name for d in self.program.decls]

    # ---------------------------------------------------------- entries

    def ir(self, key, build: Callable[[Inputs, Any], list], inputs: Inputs,
           after: str | None = None) -> Program:
        """The IR that ``build(inputs, builder) -> outputs`` lowers to, after pass ``after``
        (``key`` is unused: inspection is not cached)."""
        return self.entries.program("inspect", inputs, lambda low, b: (build(inputs, b), None),
                                    after=after)

    def objective(self, name: str, args: tuple, kwargs: dict) -> Objective:
        """The objective ``name`` (of this program or the standard library) applied to args."""
        if name not in self.lowerer.decls or self.lowerer.decls[name].kind != "objective":
            raise DataError(Diagnostic(f"there is no objective '{name}'"))
        return Objective(self, name, tuple(args), dict(kwargs))

    def marginal(self, family, keep, particles: int = 1, proposal=None, exact: bool = False):
        """``marginal(family, keep=[…], particles=m)`` (see ppl.stdlib.marginal)."""
        return Marginal(family, keep, particles, proposal, exact)

    def normalize(self, target, family, particles: int):
        """``normalize(target, family, particles=N)`` (see ppl.stdlib.normalize)."""
        return Normalize(target, family, particles)

    def auto(self, kind: str, target, **options):
        """``auto_<kind>(target, **options)``, an automatic family (see ppl.stdlib.auto_normal)."""
        return Auto(kind, target, **options)

    def call_fn(self, name: str, args, kwargs, params: dict | None = None, key=None):
        """Run the ``fn`` ``name`` (of the program or the standard library) on arguments;
        ``params`` and ``key`` serve a fn that simulates families (``sim``)."""
        inputs = Inputs(self)
        a, kw, sig = inputs.call(tuple(args), dict(kwargs))

        def emit(lowerer, b):
            result = lowerer.inline_call(name, a, kw, None, b)
            return [lowerer.as_atom(x, None) for x in tree_leaves(result)], result

        entry = self.entries.get("fn", name, sig, inputs, emit)
        outs = entry(params, key, inputs.arrays)
        return tree_unflatten(entry.structure, list(outs))


class GenDeclaration:
    """A ``gen`` declaration of a module (``m.guide``): call it with its arguments for a
    :class:`GenerativeFunction`; uncalled, it names a proposal (``marginal(..., proposal=m.rev)``)."""

    def __init__(self, module: Module, name: str):
        self.module = module
        self.declaration = name

    def __call__(self, *args, **kwargs) -> "GenerativeFunction":
        return GenerativeFunction(self.module, self.declaration, args, kwargs)

    def __repr__(self) -> str:
        return f"<gen {self.declaration}>"


class GenerativeFunction(GenerativeArgument):
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
        both = merge_observations(self.observations, observations)
        return GenerativeFunction(self.module, self.name, self.args, self.kwargs, both)

    def lower_into(self, inputs: Inputs) -> tuple[GenValue, tuple]:
        """Its compile-time value (arguments and observations as inputs) and signature."""
        if inputs.module is not None and inputs.module is not self.module:
            raise DataError(Diagnostic(f"{self!r} comes from another program than the one it "
                                       "is passed to", help="declare every generative function "
                                       "an entry uses in one program"))
        args, kwargs, sig = inputs.call(self.args, self.kwargs, f"{self.name}_arg")
        lowerer = self.module.lowerer
        gv = lowerer.gen_value(self.name, args, kwargs)
        choices, supports, masked = {}, {}, set()
        if self.observations:
            fn = lowerer.specialise(gv)
            choices = dict(trace_type(fn, lowerer.functions).fields)
            supports = finite_supports(fn.body, lowerer.functions, self.module.library)
            masked = masked_addresses(fn.body, lowerer.functions)
        obs, obs_sig = [], []
        for address in sorted(self.observations):
            v = inputs.add(self.observations[address], address)
            check_observation(address, inputs.arrays[-1], choices.get(address),
                              supports.get(address), address in masked)
            obs.append((address, v))
            obs_sig.append((address, v.type))
        gv = GenValue(gv.decl, gv.static, gv.dynamic, tuple(obs), None)
        return gv, ("gen", self.name) + sig + (tuple(obs_sig),)

    def gen_value(self, inputs: Inputs) -> GenValue:
        return self.lower_into(inputs)[0]

    # ---------------------------------------------------------- entries

    def _entry(self, kind: str, inputs: Inputs, signature: tuple, emit):
        return self.module.entries.get(kind, self.name, signature, inputs, emit)

    def _simulate_entry(self):
        inputs = Inputs(self.module)
        gv, sig = self.lower_into(inputs)
        if gv.observations:
            raise DataError(Diagnostic(
                f"cannot simulate {self!r}: it is conditioned on observations, and there is no "
                "sampler for a posterior", help="simulate the unconditioned model instead"))
        entry = self._entry("simulate", inputs, sig,
                            lambda low, b: (list(low.emit_sim(gv, b, None)), None))
        return entry, inputs

    def _unconditioned(self) -> "GenerativeFunction":
        return GenerativeFunction(self.module, self.name, self.args, self.kwargs)

    def init(self, key) -> dict[str, Any]:
        """Initial (unconstrained) values of the parameters it reaches, by path."""
        key = check_key(key)
        entry, _ = self._unconditioned()._simulate_entry()
        return entry.init(key)

    def simulate(self, key, params: dict | None = None) -> tuple[Trace, Any]:
        """Run forward: a trace of every choice and its log density."""
        entry, inputs = self._simulate_entry()
        (values, retval), logp = entry(params, check_key(key), inputs.arrays)
        ttype: TraceType = entry.out_types[0]
        ret = tree_unflatten(ttype.retval, list(retval)) if ttype.retval not in (None, ()) else None
        return Trace(values, ret), logp

    def sample(self, key, params: dict | None = None, n: int = 1000) -> Trace:
        """``n`` independent traces, stacked along a leading axis (one vmapped program)."""
        n = _count(n, "sample(n=...)")
        key = check_key(key)
        entry, inputs = self._simulate_entry()
        p = entry.params(params)
        keys = jax.random.split(key, n)
        (values, retval), _ = jax.vmap(lambda k: entry.run(p, k, list(inputs.arrays)))(keys)
        return Trace(values)

    def predictive(self, key, given: Trace, params: dict | None = None) -> Trace:
        """Posterior predictive draws: for each of the stacked traces in ``given`` (a
        leading sample axis, e.g. from ``family.sample``), run this model with those
        choices fixed and the others drawn. Returns stacked full traces."""
        key = check_key(key)
        if not isinstance(given, Trace):
            given = Trace(given)
        values = {a: as_array(v, a) for a, v in given.values_by_address.items()}
        sizes = {int(v.shape[0]) if v.ndim else None for v in values.values()}
        if len(sizes) != 1 or None in sizes or 0 in sizes:
            raise DataError(Diagnostic("predictive() needs traces stacked along a leading "
                                       "sample axis (e.g. from family.sample(key, params, n))"))
        n = sizes.pop()
        inputs = Inputs(self.module)
        tvar = inputs.add_trace(Trace({a: v[0] for a, v in values.items()}), "given")
        gv, sig = self.lower_into(inputs)
        if gv.observations:
            raise DataError(Diagnostic("predictive() simulates the model, so it must not be "
                                       "conditioned; pass the unconditioned model"))
        entry = self._entry("generate", inputs, (("trace", tvar.type), sig),
                            lambda low, b: (list(low.emit_generate(gv, tvar, b, None)), None))
        p = entry.params(params)
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
        inputs = Inputs(self.module)
        tvar = inputs.add_trace(trace)
        gv, sig = self.lower_into(inputs)
        entry = self._entry("density", inputs, (("trace", tvar.type), sig),
                            lambda low, b: ([low.emit_density(gv, tvar, b, None)], None))
        return entry(params, None, inputs.arrays)[0]

    def ir(self, after: str | None = None) -> Program:
        """The IR of its entry after a pass (for inspection): simulate, or, for a
        conditioned function, the density of its latent choices."""
        inputs = Inputs(self.module)
        if self.observations:
            entry, _ = self._unconditioned()._simulate_entry()
            tvar = inputs.add_trace(Trace({a: jnp.zeros(t.shape, t.dtype) for a, t in
                                           entry.out_types[0].fields if a not in self.observations}))
        gv, _ = self.lower_into(inputs)

        def emit(low, b):
            if self.observations:
                return [low.emit_density(gv, tvar, b, None)], None
            return list(low.emit_sim(gv, b, None)), None

        return self.module.entries.program("inspect", inputs, emit, after=after)


def _count(n, what: str) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(Diagnostic(f"{what} must be a positive integer, got {n!r}"))
    return int(n)


def sample_equations(region, functions: dict, prefix: str = ""):
    """``(address, eqn)`` for each ``sample`` of a region, calls followed under their address."""
    for e in region.eqns:
        if e.op == "sample":
            yield prefix + e.attrs["address"], e
        elif e.op == "call":
            callee = e.regions[0] if e.regions else functions[e.attrs["callee"]].body
            yield from sample_equations(callee, functions, call_prefix(prefix, e.attrs["address"]))
        else:
            for r in e.regions:
                yield from sample_equations(r, functions, prefix)


def finite_supports(region, functions: dict, library) -> dict:
    """``address -> (distribution, K)`` for each choice of a finite family whose values
    0 .. K-1 are known when the model is compiled (bernoulli, categorical, a binomial
    with a literal count); the library's ``support_size`` says K."""
    from .compiler.ir import Lit

    out = {}
    for address, e in sample_equations(region, functions):
        dist = library.distributions[e.attrs["dist"]]
        size = getattr(dist, "support_size", None)
        if size is not None and getattr(dist, "enumerable", False):
            args = [a.value if isinstance(a, Lit) else a.type
                    for a in e.args[:len(e.attrs["form"])]]
            try:
                k = size(e.attrs["form"], args)
            except ValueError:  # a support known only at run time (a traced count)
                k = None
            if k is not None:
                out[address] = (e.attrs["dist"], int(k))
    return out


def masked_addresses(region, functions: dict) -> set[str]:
    """The addresses of masked choices (``y ~ d(...) if m``), where NaN data mean missing."""
    return {address for address, e in sample_equations(region, functions) if e.attrs.get("masked")}


def check_observation(address: str, value, choice, support: tuple | None = None,
                      masked: bool = False) -> None:
    """Observed data must fit the choice it observes: finite; for an ``int`` or
    ``bool`` choice whole numbers (0 or 1 for bool); for a finite family
    (``support``: its name and size K) values in 0 .. K-1. A masked choice
    (``y ~ d(...) if m``) may hold NaN, meaning missing: the mask must be false
    there, which is the program's to say (a NaN where it is true makes the log
    density NaN). Data known only inside a trace (a minibatch inside ``fit``) are
    not checked here."""
    if isinstance(value, jax.core.Tracer) or not hasattr(value, "dtype"):
        return
    a = np.asarray(value)
    if masked and a.dtype.kind == "f":
        a = a[~np.isnan(a)]
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        what = "NaN" if np.any(np.isnan(a)) else "infinite values"
        raise DataError(Diagnostic(
            f"the observation at '{address}' holds {what}",
            help="a log density of NaN or inf data is not a number; drop or impute the missing "
                 "points" + (", or mark them missing: NaN where the choice is masked "
                             "('y ~ d(...) if m', with m false there)" if what == "NaN" else "")))
    want = getattr(choice, "dtype", None)
    if want in ("int32", "bool") and a.dtype.kind == "f":
        bad = a[a != np.round(a)]
        if bad.size:
            raise DataError(Diagnostic(
                f"the observation at '{address}' holds {bad.flat[0]:g}, but the choice there "
                f"is {'an int' if want == 'int32' else 'a bool'}, so its data must be whole "
                "numbers", help="pass integer data (it would otherwise be truncated)"))
    if want == "bool" and a.dtype.kind in "fiu":
        bad = a[(a != 0) & (a != 1)]
        if bad.size:
            raise DataError(Diagnostic(f"the observation at '{address}' holds {bad.flat[0]:g}, "
                                       "but the choice there is a bool (0 or 1)"))
    if support is not None and a.dtype.kind in "fiub":
        name, k = support
        bad = a[(a < 0) | (a > k - 1)]
        if bad.size:
            raise DataError(Diagnostic(
                f"the observation at '{address}' holds {bad.flat[0]:g}, outside the values of "
                f"its {name} (0 to {k - 1})",
                help="its log density there is not a number the model defines"))


__all__ = ["load", "compile", "Module", "GenerativeFunction", "Trace", "PPLError"]
