"""The standard semantics: run expanded IR on JAX.

An interpreter over the IR, run while JAX traces (so its Python cost is paid
once, at compile time). Each op has a rule in ``RULES``; structured ops map
to JAX's own structure: ``plate`` to ``jax.vmap``, ``scan`` to
``jax.lax.scan``, ``cond`` to ``jax.lax.cond``. Randomness is explicit but
implicit in the IR: the key of the equation at position ``j`` of a region
is ``fold_in(region_key, j)``, and a plate's iterations get ``split`` keys,
so draws are independent and reproducible from one key.

Traces are pytrees ``(values_by_address, retval_leaves)``, so they pass
through ``vmap`` and ``scan`` unchanged. Parameters arrive unconstrained and
are constrained where a ``param`` equation reads them.

    >>> # evaluate(program, library, params, key, inputs) -> list of outputs
"""

from __future__ import annotations

import weakref
import zlib
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ..diagnostics import error
from ..indexing import broadcast_shapes
from ..ir import OPS, Eqn, Function, Lit, Program, Region, Var, walk
from ..types import ArrayType, TraceType


class Interpreter:
    """Evaluates regions of one program, given a library and parameters."""

    def __init__(self, library, params: dict[str, Any] | None, program: Program):
        self.library = library
        self.program = program
        self.raw_params = params or {}
        self._constrained: dict[str, Any] = {}
        self.rules: dict[str, Callable] = dict(RULES)

    # ---------------------------------------------------------- regions

    def run(self, region: Region, args: list, key, env: dict[Var, Any] | None = None) -> list:
        env = dict(env) if env else {}
        for p, a in zip(region.params, args):
            env[p] = a
        for j, eqn in enumerate(region.eqns):
            self.eval_eqn(eqn, env, key, j)
        return [self.read(env, o) for o in region.outs]

    def eval_eqn(self, eqn: Eqn, env: dict, key, j: int) -> None:
        args = [self.read(env, a) for a in eqn.args]
        rule = self.rules.get(eqn.op)
        if rule is None:
            raise NotImplementedError(f"the backend has no rule for op {eqn.op!r} "
                                      "(it should have been expanded)")
        sub_key = jax.random.fold_in(key, j) if key is not None else None
        outs = rule(self, eqn, args, sub_key, env)
        for v, x in zip(eqn.outs, outs):
            env[v] = x

    @staticmethod
    def read(env: dict, a):
        if isinstance(a, Lit):
            return a.value
        return env[a]

    # ---------------------------------------------------------- parameters

    def param(self, path: str):
        if path not in self._constrained:
            info = self.program.params[path]
            if path not in self.raw_params:
                raise KeyError(path)
            c = self.library.constraint(info.constraint)
            self._constrained[path] = c.to_constrained(self.raw_params[path])
        return self._constrained[path]


# -------------------------------------------------------------- rules


def _fn(it: Interpreter, eqn: Eqn, args, key, env):
    name = eqn.attrs["name"]
    if name == "identity":
        return [args[0]]
    f = it.library.functions[name]
    bound = bind_for_impl(f, eqn.attrs, args)
    return [_cast(f.impl(**bound), eqn.outs[0].type)]


def bind_for_impl(f, attrs: dict, args: list) -> dict:
    """Rebuild a function's keyword arguments from an equation's atoms and attributes."""
    bound, i = {}, 0
    for spec in f.params:
        if spec.static:
            bound[spec.name] = attrs[spec.name]
        elif spec.variadic:
            n = attrs["count"]
            bound[spec.name] = tuple(args[i:i + n])
            i += n
        else:
            bound[spec.name] = args[i]
            i += 1
    return bound


def _cast(x, t):
    if isinstance(t, ArrayType):
        x = jnp.asarray(x)
        if x.dtype != jnp.dtype(t.dtype):
            x = x.astype(t.dtype)
    return x


def _index(it, eqn, args, key, env):
    # The spec as a NumPy index (compiler/indexing.py); jax.numpy clamps traced indices
    # outside the array to its ends, the documented rule for indices known only at run time.
    x, rest = args[0], list(args[1:])
    idx = []
    for s in eqn.attrs["spec"]:
        if s[0] == "c":
            idx.append(s[1])
        elif s[0] == "s":
            idx.append(slice(s[1], s[2]))
        elif s[0] == "n":
            idx.append(None)
        else:
            idx.append(rest.pop(0))
    return [jnp.asarray(x)[tuple(idx)]]


def _param(it, eqn, args, key, env):
    value = it.param(eqn.attrs["path"])
    return [jax.lax.stop_gradient(value) if eqn.attrs.get("stop") else value]


def _init(it, eqn, args, key, env):
    attrs = dict(eqn.attrs)
    init = it.library.initializers[attrs.pop("name")]
    shape = attrs.pop("shape")
    return [init.impl(key, shape, eqn.outs[0].type.dtype, **attrs)]


def _draw(it, eqn, args, key, env):
    d = it.library.distributions[eqn.attrs["dist"]]
    return [_cast(d.sample(eqn.attrs["form"], args[:len(eqn.attrs["form"])], key), eqn.outs[0].type)]


def _logpdf(it, eqn, args, key, env):
    # The row's log density, not numpyro's: its derivatives are right at boundary points.
    d = it.library.distributions[eqn.attrs["dist"]]
    form = eqn.attrs["form"]
    value, params = args[0], args[1:1 + len(form)]
    if eqn.attrs.get("masked"):
        return [masked_log_density(d, form, params, value, args[1 + len(form)], eqn.span)]
    return [jnp.sum(d.log_prob(form, params, value))]


def masked_log_density(d, form, params, value, mask, span):
    """Σ over the elements where ``mask`` is true of their log densities (``x ~ d if m``).

    The mask broadcasts over the choice's elements: its batch shape, the value's
    shape without the distribution's event axes (one element per vector of an
    ``mvnormal``), as numpyro's ``mask``. Masked-out values (missing data, NaN) are
    replaced by a point of the support before the density is computed, so neither
    their value nor a derivative through them (0 · NaN) reaches the sum.
    """
    dist = d.build(form, params)
    value = jnp.asarray(value)
    events = len(dist.event_shape)
    batch = value.shape[:value.ndim - events]
    mask = jnp.asarray(mask)
    if broadcast_shapes([mask.shape, batch]) != batch:
        raise error(f"the mask has shape {list(mask.shape)}, which does not broadcast to the "
                    f"shape {list(batch)} of the choice's elements", span,
                    help="give the mask the choice's shape, or one that broadcasts to it "
                         "(add axes with None: m[:, None])")
    mask = jnp.broadcast_to(mask, batch)
    inside = jnp.reshape(mask, batch + (1,) * events)
    feasible = jax.lax.stop_gradient(dist.support.feasible_like(value)).astype(value.dtype)
    log_density = d.log_prob(form, params, jnp.where(inside, value, feasible))
    return jnp.sum(jnp.where(mask, log_density, 0.0))


def _make_trace(it, eqn, args, key, env):
    addresses = eqn.attrs["addresses"]
    return [(dict(zip(addresses, args[:len(addresses)])), tuple(args[len(addresses):]))]


def _trace_get(it, eqn, args, key, env):
    values, _ = args[0]
    a = eqn.attrs["address"]
    if a in values:
        return [values[a]]
    prefix = a + "/"
    return [({k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}, ())]


def _trace_retval(it, eqn, args, key, env):
    return list(args[0][1])


_DRAWS: "weakref.WeakKeyDictionary[Region, bool]" = weakref.WeakKeyDictionary()


def _draws(region: Region) -> bool:
    """Whether a region draws random numbers (so its iterations need keys of their own)."""
    if region not in _DRAWS:
        _DRAWS[region] = any(OPS[e.op][1] for e in walk(region))
    return _DRAWS[region]


def _iteration_keys(region, key, n: int):
    """One key per iteration for a region that draws; none (the key itself, unsplit, for
    every iteration) for a pure one: splitting costs a kernel a loop does not need."""
    if not _draws(region):
        return None
    return jax.random.split(key, n) if n else jnp.zeros((0, 2), jnp.uint32)


def _plate(it, eqn, args, key, env):
    region = eqn.regions[0]
    n = eqn.attrs["size"]
    keys = _iteration_keys(region, key, n)

    def body(i, k, mapped):
        return tuple(it.run(region, [i] + list(mapped), key if k is None else k, env))

    if n == 0:
        return [jnp.zeros(v.type.shape, v.type.dtype) if isinstance(v.type, ArrayType)
                else _empty_trace(v.type) for v in eqn.outs]
    outs = jax.vmap(body, in_axes=(0, None if keys is None else 0, 0))(
        jnp.arange(n, dtype=jnp.int32), keys, tuple(args))
    return list(outs)


def _empty_trace(t: TraceType):
    return ({a: jnp.zeros(ft.shape, ft.dtype) for a, ft in t.fields}, ())


def _scan(it, eqn, args, key, env):
    region = eqn.regions[0]
    n, c = eqn.attrs["length"], eqn.attrs["carries"]
    init, xs = tuple(args[:c]), tuple(args[c:])

    keys = _iteration_keys(region, key, n)

    def step(carry, inputs):
        i, k, x = inputs
        outs = it.run(region, [i] + list(carry) + list(x), key if keys is None else k, env)
        return tuple(outs[:c]), tuple(outs[c:])

    if n == 0:  # as a plate of none: the body is not traced (it may index an empty axis)
        return list(init) + [jnp.zeros(v.type.shape, v.type.dtype) if isinstance(v.type, ArrayType)
                             else _empty_trace(v.type) for v in eqn.outs[c:]]
    steps = jnp.arange(n, dtype=jnp.int32)
    final, ys = jax.lax.scan(step, init, (steps, steps if keys is None else keys, xs), length=n)
    return list(final) + list(ys)


def _cond(it, eqn, args, key, env):
    then, orelse = eqn.regions
    return list(jax.lax.cond(args[0], lambda: tuple(it.run(then, [], key, env)),
                             lambda: tuple(it.run(orelse, [], key, env))))


def _expect(it, eqn, args, key, env):
    # The standard semantics of an expectation is one Monte Carlo estimate.
    return it.run(eqn.regions[0], [], key, env)


RULES: dict[str, Callable] = {
    "fn": _fn, "index": _index, "param": _param, "init": _init, "draw": _draw,
    "logpdf": _logpdf, "make_trace": _make_trace, "trace_get": _trace_get,
    "trace_retval": _trace_retval, "plate": _plate, "scan": _scan, "cond": _cond,
    "expect": _expect,
}


# -------------------------------------------------------------- entry points


def evaluate(program: Program, library, params: dict | None, key, inputs: list) -> list:
    """Run the program's entry function on ``inputs`` (call inside ``jax.jit``)."""
    fn = program.functions[program.entry]
    return Interpreter(library, params, program).run(fn.body, list(inputs), key)


def init_params(program: Program, library, key) -> dict[str, Any]:
    """Initial unconstrained values of every parameter the program reaches."""
    out = {}
    for path, info in program.params.items():
        k = jax.random.fold_in(key, zlib.crc32(path.encode()) & 0x7FFFFFFF)
        value = Interpreter(library, {}, program).run(info.init.body, [], k)[0]
        value = jnp.broadcast_to(jnp.asarray(value, jnp.result_type(float)), info.type.shape)
        out[path] = library.constraint(info.constraint).to_unconstrained(value)
    return out


def run_function(fn: Function, library, program: Program, params, key, inputs) -> list:
    return Interpreter(library, params, program).run(fn.body, list(inputs), key)
