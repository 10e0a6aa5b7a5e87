"""ADEV: unbiased gradient estimation of objectives by evaluation on dual numbers.

An objective's entry function is evaluated forward on dual numbers
``DV(primal, tangent, axes)`` (``tangent`` None means zero; ``axes`` the
enclosing plates whose axis the value has). Pure equations
go through ``jax.jvp``. Inside an ``expect`` region evaluation is in
continuation-passing style: at a ``draw``, the site's estimator rule
(``library.estimators``) receives the site and the continuation ``k`` (the
rest of the region, as a Python function) and returns the estimated
``(ℓ, ℓ̇)``. ANF makes the continuation simply "the equations after this
one".

- **Plates** containing draws are entered, not mapped: their body is
  evaluated once, batched: a value carries the axes of the plates it varies
  over (``axes``, plate levels counted from the outermost), pure equations
  are ``vmap`` ped over the axes their inputs have, and a value that does
  not depend on a plate (an encoder's output inside a plate of particles)
  is never broadcast over it. A draw in a plate is one batched choice, and
  its continuation runs through the rest of the plate and past it.
- **REINFORCE** terms ``ℓ·s`` need the region's final value ℓ; the rule
  passes ``s`` to ``k`` and the interpreter accumulates it (``acc``), adding
  ``ℓ·S + T`` where the region ends. The same accumulation lets reparam and
  reinforce run inside ``for`` loops (``lax.scan``), where no continuation
  exists; enum and mvd there are rejected when the objective is compiled.
- The whole objective is a ``jax.custom_jvp`` function whose JVP rule is this
  interpreter; ``jax.grad`` transposes the (linear in tangents) rule into
  reverse mode, and ``jax.jit`` compiles one XLA program.

    >>> # f = objective_function(program, library); jax.value_and_grad(f)(params, key, inputs)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..ir import Eqn, Lit, Program, Region, Var, walk
from .plate_axes import full_levels as _full, lift as _lift, union as _union, vmap_levels as _vmap_levels
from .site import Site
from .standard import RULES, Interpreter, evaluate


@dataclass
class DV:
    primal: Any
    tangent: Any
    axes: tuple = ()  # the plate levels (1 = outermost) whose axes lead the arrays, in order


@dataclass
class TraceDV:
    values: dict
    retval: list


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def free_vars(region: Region, cache: dict) -> list[Var]:
    """Variables a region uses but does not define (its closure)."""
    key = region
    if key in cache:
        return cache[key]
    defined, used = set(), []
    seen = set()

    def visit(r: Region):
        defined.update(p for p in r.params)
        for e in r.eqns:
            for a in e.args:
                if isinstance(a, Var) and a not in seen:
                    seen.add(a)
                    used.append(a)
            for sub in e.regions:
                visit(sub)
            defined.update(v for v in e.outs)
        for o in r.outs:
            if isinstance(o, Var) and o not in seen:
                seen.add(o)
                used.append(o)

    visit(region)
    cache[key] = [v for v in used if v not in defined]
    return cache[key]


def has_draws(eqn: Eqn) -> bool:
    return any(e.op == "draw" for r in eqn.regions for e in walk(r))


class ADEV:
    """The dual-number, continuation-passing interpreter of one objective."""

    def __init__(self, library, program: Program, params: dict, params_dot: dict):
        self.library = library
        self.program = program
        self.params = params
        self.params_dot = params_dot
        self.std = Interpreter(library, params, program)
        self.free_cache: dict = {}
        self.separable_cache: dict = {}
        # While a separable continuation is run weighted: the weights of its sums over
        # the plate axis (see Site._weighted).
        self.weights: dict | None = None

    # ---------------------------------------------------------- entry

    def run(self, key, inputs: list):
        fn = self.program.functions[self.program.entry]
        env = {}
        for p, a in zip(fn.params, inputs):
            env[p] = self.from_input(a)
        for j, e in enumerate(fn.body.eqns):
            self.eval_outside(e, env, jax.random.fold_in(key, j))
        out = self.read(env, fn.body.outs[0])
        return out.primal, out.tangent

    def from_input(self, a):
        if isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], dict):
            return TraceDV({k: DV(v, None) for k, v in a[0].items()},
                           [DV(v, None) for v in a[1]])
        return DV(a, None)

    def eval_outside(self, e: Eqn, env: dict, key) -> None:
        if e.op == "expect":
            value, tangent = self.expect(e.regions[0], env, key)
            env[e.outs[0]] = DV(value, tangent)
        elif e.op == "param":
            env[e.outs[0]] = self.param(e.attrs["path"], e.attrs.get("stop", False))
        elif e.op == "draw" or has_draws(e):
            raise NotImplementedError("random choices in an objective must be inside 'expect'")
        else:
            self.pure(e, env, 0)

    def param(self, path: str, stop: bool = False) -> DV:
        """A parameter's constrained value; ``stop``: held constant (read under ``detach``)."""
        info = self.program.params[path]
        c = self.library.constraint(info.constraint)
        u = self.params[path]
        u_dot = self.params_dot.get(path) if self.params_dot is not None else None
        if u_dot is None or stop:
            return DV(c.to_constrained(u), None)
        p, t = jax.jvp(c.to_constrained, (u,), (u_dot,))
        return DV(p, t)

    def read(self, env: dict, a):
        if isinstance(a, Lit):
            return DV(a.value, None)
        return env[a]

    # ---------------------------------------------------------- expectations

    def expect(self, region: Region, env: dict, key):
        def end(env_end, acc):
            ell = self.read(env_end, region.outs[0])
            s, t = acc
            tangent = _add(ell.tangent, None if s is None else ell.primal * s)
            return ell.primal, _add(tangent, t)

        value, tangent = self.cps(region, 0, env, key, (), (None, None), end)
        if tangent is None:
            tangent = jnp.zeros_like(jnp.asarray(value, jnp.float32))
        return value, tangent

    def cps(self, region: Region, j: int, env: dict, key, lead: tuple, acc, k_end,
            frames: tuple | None = ()):
        """Evaluate ``region.eqns[j:]``, then ``k_end(env, acc)``; returns (ℓ, ℓ̇).

        ``lead`` holds the sizes of the enclosing plates, outermost first;
        ``frames`` the (region, position) of each plate entered since the
        ``expect`` region (None inside a ``for`` loop).
        """
        eqns = region.eqns
        env = dict(env)
        depth = len(lead)
        while j < len(eqns):
            e = eqns[j]
            key_j = jax.random.fold_in(key, j)
            if e.op == "draw":
                site = Site(self, e, [self.read(env, a) for a in e.args], lead, key_j,
                            (frames, j))
                rule = self.library.estimators[e.attrs["estimator"]]

                def k(x, x_dot=None, score=None, shift=None, e=e, j=j, env=env):
                    env2 = dict(env)
                    env2[e.outs[0]] = DV(x, x_dot, _full(lead))
                    acc2 = (_add(acc[0], score), _add(acc[1], shift))
                    return self.cps(region, j + 1, env2, key, lead, acc2, k_end, frames)

                return rule(site, k)
            if e.op == "plate" and has_draws(e):
                return self.enter_plate(e, region, j, env, key, key_j, lead, acc, k_end, frames)
            if e.op == "scan" and has_draws(e):
                acc = self.scan(e, env, key_j, depth, acc)
            elif e.op == "expect":
                if depth:
                    raise NotImplementedError("an 'expect' inside a plate inside 'expect'")
                value, tangent = self.expect(e.regions[0], env, key_j)
                env[e.outs[0]] = DV(value, tangent)
            elif e.op == "param":
                env[e.outs[0]] = self.param(e.attrs["path"], e.attrs.get("stop", False))
            elif e.op in ("make_trace", "trace_get", "trace_retval"):
                self.trace_op(e, env)
            else:
                self.pure(e, env, lead)
            j += 1
        return k_end(env, acc)

    def enter_plate(self, e: Eqn, outer: Region, j, env, key, key_j, lead, acc, k_end, frames):
        """Continue inside a plate's body, batched over its axis, then after the plate."""
        region = e.regions[0]
        level = len(lead) + 1
        inner_lead = lead + (e.attrs["size"],)
        inner = dict(env)
        inner[region.params[0]] = DV(jnp.arange(inner_lead[-1], dtype=jnp.int32), None, (level,))
        for p, a in zip(region.params[1:], e.args):
            # A mapped input's first own axis becomes this plate's axis: no copy.
            dv = self.read(env, a)
            inner[p] = DV(dv.primal, dv.tangent, dv.axes + (level,))

        def k_plate(env_inner, acc2):
            env2 = dict(env)
            for out, o in zip(e.outs, region.outs):
                dv = self.read(env_inner, o)
                to = dv.axes if level in dv.axes else dv.axes + (level,)
                prim = _lift(dv.primal, dv.axes, to, inner_lead)
                tan = None if dv.tangent is None else _lift(dv.tangent, dv.axes, to, inner_lead)
                # Outside, this plate's axis is the value's first own axis.
                env2[out] = DV(prim, tan, to[:-1])
            return self.cps(outer, j + 1, env2, key, lead, acc2, k_end, frames)

        # Keys are not batched over plates: a choice in a plate is drawn as one batch.
        inner_frames = None if frames is None else frames + ((outer, j),)
        return self.cps(region, 0, inner, key_j, inner_lead, acc, k_plate, inner_frames)

    def scan(self, e: Eqn, env: dict, key, depth: int, acc):
        """A ``for`` loop with draws: straight-line evaluation inside ``lax.scan``."""
        if depth:
            raise NotImplementedError("a for loop with random choices inside a plate, "
                                      "inside 'expect', is not supported")
        region = e.regions[0]
        n, c = e.attrs["length"], e.attrs["carries"]
        for sub in walk(region):
            if sub.op == "draw" and sub.attrs["estimator"] not in self.library.estimator_tail:
                raise NotImplementedError(f"estimator {sub.attrs['estimator']} inside a for loop")
        args = [self.read(env, a) for a in e.args]
        init = [(a.primal, a.tangent if a.tangent is not None else jnp.zeros_like(a.primal))
                if _is_float(a.primal) else (a.primal, None) for a in args[:c]]
        zero = jnp.zeros((), jnp.float32)
        s0 = zero if acc[0] is None else acc[0]
        t0 = zero if acc[1] is None else acc[1]
        xs = [a for a in args[c:]]

        def step(carry, inputs):
            state, s, t = carry
            i, k, x_prims, x_tans = inputs
            inner = dict(env)
            inner[region.params[0]] = DV(i, None)
            for p, (prim, tan) in zip(region.params[1:1 + c], state):
                inner[p] = DV(prim, tan)
            for p, prim, tan in zip(region.params[1 + c:], x_prims, x_tans):
                inner[p] = DV(prim, tan)
            box = {}

            def end(env_end, acc_end):
                box["env"], box["acc"] = env_end, acc_end
                return None, None

            self.cps(region, 0, inner, k, (), (s, t), end, None)
            outs = [self.read(box["env"], o) for o in region.outs]
            new_state = tuple((o.primal, (o.tangent if o.tangent is not None else
                                          jnp.zeros_like(o.primal)) if st[1] is not None else None)
                              for o, st in zip(outs[:c], state))
            ys = tuple((o.primal, o.tangent) for o in outs[c:])
            s2, t2 = box["acc"]
            return (new_state, s if s2 is None else s2, t if t2 is None else t2), ys

        keys = jax.random.split(key, n)
        x_prims = tuple(a.primal for a in xs)
        x_tans = tuple(a.tangent for a in xs)
        (final, s, t), ys = jax.lax.scan(
            step, (tuple(init), s0, t0), (jnp.arange(n, dtype=jnp.int32), keys, x_prims, x_tans))
        for out, (prim, tan) in zip(e.outs[:c], final):
            env[out] = DV(prim, tan)
        for out, (prim, tan) in zip(e.outs[c:], ys):
            env[out] = DV(prim, tan)
        return (s, t)

    # ---------------------------------------------------------- keys

    # ---------------------------------------------------------- pure equations

    def trace_op(self, e: Eqn, env: dict) -> None:
        args = [self.read(env, a) for a in e.args]
        if e.op == "make_trace":
            n = len(e.attrs["addresses"])
            env[e.outs[0]] = TraceDV(dict(zip(e.attrs["addresses"], args[:n])), args[n:])
            return
        t = args[0]
        if not isinstance(t, TraceDV):
            t = TraceDV({a: DV(v, None, t.axes) for a, v in t.primal[0].items()},
                        [DV(v, None, t.axes) for v in t.primal[1]])
        if e.op == "trace_retval":
            for out, v in zip(e.outs, t.retval):
                env[out] = v
            return
        a = e.attrs["address"]
        if a in t.values:
            env[e.outs[0]] = t.values[a]
        else:
            prefix = a + "/"
            env[e.outs[0]] = TraceDV({k[len(prefix):]: v for k, v in t.values.items()
                                          if k.startswith(prefix)}, [])

    def pure(self, e: Eqn, env: dict, lead: tuple) -> None:
        if self.weights and e in self.weights:
            self.weighted_sum(e, env, self.weights[e])
            return
        free = [v for r in e.regions for v in free_vars(r, self.free_cache)]
        inputs = [self.read(env, a) for a in e.args] + [self.read(env, v) for v in free]
        inputs = [self.as_dv(x, lead) for x in inputs]
        n_args = len(e.args)
        std = self.std
        dummy_key = jax.random.PRNGKey(0)

        def f(*prims):
            closure = {v: p for v, p in zip(free, prims[n_args:])}
            return tuple(RULES[e.op](std, e, list(prims[:n_args]), dummy_key, closure))

        outs = self.apply(f, inputs)
        for v, o in zip(e.outs, outs):
            env[v] = o

    def weighted_sum(self, e: Eqn, env: dict, w) -> None:
        """Σ_i w_i·v_i over a value's plate axis (axis 0) and the sum of the rest."""
        v = self.read(env, e.args[0])

        def weigh(x):
            x = jnp.asarray(x)
            return jnp.sum(x * jnp.reshape(w, w.shape + (1,) * (x.ndim - 1)).astype(x.dtype))

        env[e.outs[0]] = DV(weigh(v.primal), None if v.tangent is None else weigh(v.tangent))

    def as_dv(self, x, lead: tuple):
        if isinstance(x, DV):
            return x
        # A trace: its leaves over the same plate axes, as a pytree (values, retval).
        leaves = list(x.values.values()) + list(x.retval)
        axes = _union([v.axes for v in leaves])
        prim = ({a: _lift(v.primal, v.axes, axes, lead) for a, v in x.values.items()},
                tuple(_lift(v.primal, v.axes, axes, lead) for v in x.retval))
        if all(v.tangent is None for v in leaves):
            return DV(prim, None, axes)

        def tan(v):
            p = _lift(v.primal, v.axes, axes, lead)
            if v.tangent is not None:
                return _lift(v.tangent, v.axes, axes, lead)
            if _is_float(p):
                return jnp.zeros_like(p)
            return np.zeros(np.shape(p), dtype=jax.dtypes.float0)

        return DV(prim, ({a: tan(v) for a, v in x.values.items()},
                         tuple(tan(v) for v in x.retval)), axes)

    def apply(self, f: Callable, inputs: list[DV]) -> list[DV]:
        """Apply ``f`` (on primals) to dual inputs over their plate axes, by jvp and vmap."""
        axes_list = [x.axes for x in inputs]
        levels = _union(axes_list)
        diff = [i for i, x in enumerate(inputs) if x.tangent is not None]
        if not diff:
            outs = _vmap_levels(f, axes_list, levels)(*[x.primal for x in inputs])
            return [DV(o, None, levels) for o in outs]

        def g(*prims_and_tans):
            prims = list(prims_and_tans[:len(inputs)])
            tans = prims_and_tans[len(inputs):]

            def h(*diff_prims):
                full = list(prims)
                for i, p in zip(diff, diff_prims):
                    full[i] = p
                return f(*full)

            return jax.jvp(h, tuple(prims[i] for i in diff), tuple(tans))

        mapped = _vmap_levels(g, axes_list + [axes_list[i] for i in diff], levels)
        out_p, out_t = mapped(*[x.primal for x in inputs], *[inputs[i].tangent for i in diff])
        result = []
        for p, t in zip(out_p, out_t):
            leaves = jax.tree_util.tree_leaves(t)
            if all(getattr(leaf, "dtype", None) == jax.dtypes.float0 for leaf in leaves):
                t = None
            result.append(DV(p, t, levels))
        return result


def objective_function(program: Program, library) -> Callable:
    """``f(params, key, inputs) -> value``, whose JVP is the ADEV estimator."""

    @jax.custom_jvp
    def f(params, key, inputs):
        return evaluate(program, library, params, key, inputs)[0]

    @f.defjvp
    def f_jvp(primals, tangents):
        params, key, inputs = primals
        params_dot = tangents[0]
        value, tangent = ADEV(library, program, params, params_dot).run(key, inputs)
        if tangent is None:
            tangent = jnp.zeros_like(jnp.asarray(value, jnp.float32))
        return jnp.asarray(value, jnp.float32), jnp.asarray(tangent, jnp.float32)

    return f
