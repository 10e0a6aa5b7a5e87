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
from .separable import separable_sums
from .standard import RULES, Interpreter, build_distribution, evaluate


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


def _union(axes_list) -> tuple:
    return tuple(sorted(set().union(*axes_list))) if axes_list else ()


def _vmap_levels(fn: Callable, axes_list: list[tuple], levels: tuple) -> Callable:
    """``fn`` mapped over the plate ``levels``; an input maps at the levels it has."""
    for level in reversed(levels):
        fn = jax.vmap(fn, in_axes=tuple(0 if level in axes else None for axes in axes_list))
    return fn


def _lift(x, from_axes: tuple, to_axes: tuple, lead: tuple):
    """Broadcast an array with plate axes ``from_axes`` to ``to_axes`` (a superset);
    ``lead[l - 1]`` is the size of plate level l."""
    if tuple(from_axes) == tuple(to_axes):
        return x
    x = jnp.asarray(x)
    rest = x.shape[len(from_axes):]
    shape = tuple(x.shape[from_axes.index(l)] if l in from_axes else 1 for l in to_axes)
    return jnp.broadcast_to(x.reshape(shape + rest), tuple(lead[l - 1] for l in to_axes) + rest)


def _full(lead: tuple) -> tuple:
    return tuple(range(1, len(lead) + 1))


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


class Site:
    """A random choice as its estimator rule sees it (see stdlib/estimators.py).

    A choice inside plates is one batched choice: its parameters are
    broadcast over the plate axes (``shape`` = plate axes + value shape) and
    it is drawn with one key, as numpyro draws a batch.
    """

    # Use the separability of a continuation (separable.py): alternatives of a choice in
    # O(N·M) rather than O(N²·M), and per-element REINFORCE. Tests switch it off to compare.
    use_separability = True

    def __init__(self, adev: ADEV, eqn: Eqn, args: list[DV], lead: tuple, key, where=(None, 0)):
        self.adev = adev
        self.eqn = eqn
        self.frames, self.position = where
        self.dist_name = eqn.attrs["dist"]
        self.form = eqn.attrs["form"]
        self.depth = depth = len(lead)
        self.key = key
        self.value_type = eqn.outs[0].type
        self.shape = lead + tuple(self.value_type.shape)
        self.dtype = self.value_type.dtype
        self.size = int(np.prod(self.shape)) if self.shape else 1
        # Plate axes go in front of each parameter's own batch axes, which numpyro aligns
        # on the right: normal(loc[2], scale) in a plate of 3 has loc [3, 2], scale [3, 1].
        ranks = getattr(adev.library.distributions[self.dist_name], "ranks", {})
        own = [np.shape(a.primal)[len(a.axes):] for a in args[:len(self.form)]]
        batch = [len(r) - ranks.get(n, 0) for n, r in zip(self.form, own)]
        pads = [max(batch) - b_ if depth else 0 for b_ in batch] if batch else []

        full = _full(lead)

        def lift(x, axes, pad):
            if x is None:
                return None
            x = _lift(x, axes, full, lead)
            return jnp.reshape(x, lead + (1,) * pad + x.shape[len(lead):]) if pad else x

        self.primals = [lift(jnp.asarray(a.primal), a.axes, p)
                        for a, p in zip(args[:len(self.form)], pads)]
        self.tangents = [lift(a.tangent, a.axes, p) for a, p in zip(args[:len(self.form)], pads)]
        extra = args[len(self.form):]
        baseline = eqn.attrs.get("baseline")
        if extra:
            self.baseline = (jnp.asarray(extra[0].primal), extra[0].tangent)
        elif baseline is not None:
            self.baseline = (baseline, None)
        else:
            self.baseline = (None, None)

    def _dist(self, args):
        return build_distribution(self.adev.library, self.eqn.attrs, list(args))

    def key_for(self, salt: int):
        return jax.random.fold_in(self.key, 1000 + salt)

    def _jvp(self, fn: Callable):
        """(fn(θ), ∂fn·θ̇) for fn of the parameters; the tangent is None when θ̇ is zero."""
        diff = [i for i, t in enumerate(self.tangents) if t is not None]
        if not diff:
            return fn(*self.primals), None

        def h(*dp):
            full = list(self.primals)
            for i, p in zip(diff, dp):
                full[i] = p
            return fn(*full)

        return jax.jvp(h, tuple(self.primals[i] for i in diff), tuple(self.tangents[i] for i in diff))

    def sample(self, salt: int = 0):
        key = self.key if not salt else jax.random.fold_in(self.key, 7919 * salt)
        x = self._dist(self.primals).sample(key)
        return jax.lax.stop_gradient(jnp.broadcast_to(x, self.shape).astype(self.dtype))

    def rsample(self):
        return self._jvp(lambda *a: jnp.broadcast_to(self._dist(a).rsample(self.key), self.shape))

    def score(self, x):
        """Σ over elements of the tangent of log d(x; θ) (None if θ has no tangent)."""
        return self._jvp(lambda *a: jnp.sum(self._dist(a).log_prob(x)))[1]

    def element_scores(self, x):
        """The tangent of log d(x_i; θ) per element, flat (None if θ has no tangent)."""
        return self._jvp(lambda *a: jnp.reshape(
            jnp.broadcast_to(self._dist(a).log_prob(x), self.shape), (-1,)))[1]

    def support(self):
        d = self.dist_name
        if d == "bernoulli":
            return np.array([0, 1], np.int32)
        if d == "categorical":
            return np.arange(self.primals[0].shape[-1], dtype=np.int32)
        if d == "binomial":
            n = self.eqn.args[0]
            if not isinstance(n, Lit):
                raise NotImplementedError("enumerating a binomial needs a constant total_count")
            return np.arange(int(n.value) + 1, dtype=np.int32)
        raise NotImplementedError(f"{d} has no finite support")

    def probs(self):
        """Dual probabilities of each support value, shape ``shape + [V]``."""
        values = jnp.asarray(self.support(), jnp.int32)

        def pmf(*args):
            d = self._dist(args)
            return jax.vmap(lambda v: jnp.broadcast_to(
                jnp.exp(d.log_prob(jnp.full(self.shape, v, jnp.int32))), self.shape),
                out_axes=-1)(values)

        return self._jvp(pmf)

    def per_element(self, a):
        """A parameter (primal or tangent, already over the plate axes) per element."""
        return jnp.broadcast_to(a, self.shape)

    def args_dual(self, names):
        return [(self.primals[self.form.index(n)], self.tangents[self.form.index(n)]) for n in names]

    def probs_parameter(self):
        (value, tangent), = self.args_dual((self.form[0],))
        if self.form[0] == "probs":
            return value, tangent
        if tangent is None:
            return jax.nn.sigmoid(value), None
        return jax.jvp(jax.nn.sigmoid, (value,), (tangent,))

    def alternatives(self, x, values=None, shift=None, add=None, set_to=None) -> "Alternatives":
        """x with one element changed, for each element i and each of M new values of it:
        the support's ``values``, x_i + ``shift``, x_i + ``add``_i, or ``set_to``_i."""
        flat = jnp.reshape(x, (-1,))
        if values is not None:
            vals = jnp.asarray(values, flat.dtype)
            new = jnp.broadcast_to(vals[None, :], (flat.shape[0], vals.shape[0]))
        elif shift is not None:
            new = (flat + jnp.asarray(shift, flat.dtype))[:, None]
        elif add is not None:
            new = (flat + jnp.reshape(add, (-1,)).astype(flat.dtype))[:, None]
        else:
            new = jnp.reshape(jnp.broadcast_to(set_to, self.shape), (-1,)).astype(flat.dtype)[:, None]
        return Alternatives(x, new, self.shape)

    def separable_sums(self):
        """The continuation's sums over this choice's plate axis, if it is separable
        (ℓ = Σ_i c_i(x_i) + r); None otherwise, or when ``use_separability`` is off."""
        frames = self.frames
        if not (Site.use_separability and self.depth == 1 and frames is not None
                and len(frames) == 1 and self.value_type.shape == ()):
            return None
        cache = self.adev.separable_cache
        if self.eqn not in cache:
            outer, plate_j = frames[0]
            cache[self.eqn] = separable_sums(outer, plate_j, self.position)
        return cache[self.eqn]

    def _weighted(self, k, y, w, sums):
        """(ℓ, ℓ̇) of the block at y with its plate sums weighted by w (zeros for None).

        A separable block is affine in the weights, ℓ(y; w) = Σ_i w_i·c_i(y_i) + r, so
        weighted runs, and their derivatives along w (``_along``), give sums of the
        per-element terms c_i without materialising them.
        """
        adev = self.adev
        saved, adev.weights = adev.weights, {e: w for e in sums}
        try:
            ell, ell_dot = k(y, None)
        finally:
            adev.weights = saved
        zero = jnp.zeros((), jnp.float32)
        return (zero if ell is None else jnp.asarray(ell, jnp.float32),
                zero if ell_dot is None else jnp.asarray(ell_dot, jnp.float32))

    def _along(self, k, y, w, d, sums):
        """(ℓ(y; w), ℓ̇(y; w), Σ_i d_i·c_i(y_i)): a weighted run and its derivative along
        w = d (d linear in tangents; the derivative of ℓ̇ along d is dropped)."""
        (ell, ell_dot), (derivative, _) = jax.jvp(lambda w: self._weighted(k, y, w, sums),
                                                  (w,), (jnp.asarray(d, jnp.float32),))
        return ell, ell_dot, derivative

    def with_terms_along(self, k, y, direction):
        """(ℓ(y), ℓ̇(y) + Σ_i d_i·c_i(y_i)) when the block is separable, for a direction d
        (flat, linear in tangents, or None); None otherwise, without running ``k``. One
        run of the block: the per-element terms are never materialised."""
        sums = self.separable_sums()
        if sums is None:
            return None
        ones = jnp.ones((self.size,), jnp.float32)
        if direction is None:
            return self._weighted(k, y, ones, sums)
        ell, ell_dot, along = self._along(k, y, ones, direction, sums)
        return ell, ell_dot + along

    def enumerate_separable(self, k):
        """E[ℓ] over this choice, exactly, and its tangent, when the block is separable
        (ℓ = Σ_i c_i(x_i) + r); None otherwise, without running ``k``.

        Running the block at y = v (every element at v) with its plate sums weighted by
        w = p(v), the probabilities of v, gives Σ_i p_i(v)·c_i(v) + r, and at w = 0
        gives r:

            E[ℓ] = Σ_v ℓ(v; p(v)) − (V − 1)·ℓ(v_0; 0),

        and the same for the tangent ℓ̇ (affine in w too), plus Σ_i Σ_v ṗ_i(v)·c_i(v),
        the derivative of ℓ(v; w) along w = ṗ(v). One forward run per support value
        and one for r, vectorised.
        """
        sums = self.separable_sums()
        if sums is None:
            return None
        values = self.support()
        n_values = len(values)
        p, p_dot = self.probs()  # shape + [V]
        ys = jnp.stack([jnp.full(self.shape, v, self.dtype)
                        for v in list(values) + [values[0]]])  # [V + 1, *shape]
        # The weights of each run: p(v) for every v, then 0 for r.
        per_value = lambda a: jnp.concatenate([  # noqa: E731
            jnp.reshape(jnp.moveaxis(a, -1, 0), (n_values, -1)),
            jnp.zeros((1, self.size), jnp.float32)])
        if p_dot is None:
            ell, ell_dot = jax.vmap(lambda y, w: self._weighted(k, y, w, sums))(ys, per_value(p))
            along = jnp.zeros(())
        else:
            ell, ell_dot, along = jax.vmap(lambda y, w, d: self._along(k, y, w, d, sums))(
                ys, per_value(p), per_value(p_dot))
        value = jnp.sum(ell[:-1]) - (n_values - 1) * ell[-1]
        tangent = jnp.sum(ell_dot[:-1]) - (n_values - 1) * ell_dot[-1] + jnp.sum(along)
        return value, tangent

    def evaluate_alternatives(self, k, alts: "Alternatives"):
        """ℓ (primal) of the continuation at each alternative, in full: shape [size, M].

        size·M runs of the block; a rule that needs only Σ coef·ℓ over the
        alternatives (every weak derivative) uses ``contract_alternatives``, which
        takes M + 1 runs when the block is separable.
        """
        return jax.vmap(jax.vmap(lambda xa: k(xa, None)[0]))(alts.materialise())

    def contract_alternatives(self, k, alts: "Alternatives", coef):
        """Σ_i Σ_m coef[i, m]·ℓ(x with x_i = values[i, m]), for coefficients ``coef``
        ([size, M], linear in tangents): what a weak derivative needs of the alternatives.

        When the block is separable, ℓ(x with x_i = a) = ℓ(x) − c_i(x_i) + c_i(a), so
        with Dₘ the derivative of ℓ(yₘ; w) along w = coef[:, m] at w = 1 (yₘ has
        element i at values[i, m]) the sum is Σ_m Dₘ − D_x(Σ_m coef[:, m]) +
        ℓ(x)·Σ coef: M + 1 forward runs, vectorised. Otherwise each of the size·M
        alternatives is evaluated in full (``evaluate_alternatives``).
        """
        sums = self.separable_sums()
        if sums is None:
            return jnp.sum(coef * self.evaluate_alternatives(k, alts))
        ones = jnp.ones((self.size,), jnp.float32)
        coef = jnp.asarray(coef, jnp.float32)
        ys = jnp.reshape(jnp.swapaxes(alts.values, 0, 1), (-1,) + self.shape)  # [M, *shape]
        _, _, d_alt = jax.vmap(lambda y, d: self._along(k, y, ones, d, sums))(
            ys, jnp.swapaxes(coef, 0, 1))
        ell_x, _, d_x = self._along(k, alts.x, ones, jnp.sum(coef, 1), sums)
        return jnp.sum(d_alt) - d_x + ell_x * jnp.sum(coef)


@dataclass
class Alternatives:
    """Copies of a batched choice ``x`` (shape ``shape``), each with one element changed:
    element i takes each of ``values[i]`` (shape [size, M])."""

    x: Any
    values: Any
    shape: tuple

    def materialise(self):
        """The copies themselves: shape [size, M, *shape]."""
        flat = jnp.reshape(self.x, (-1,))
        eye = jnp.arange(flat.shape[0])
        copies = jnp.where(eye[:, None, None] == eye[None, None, :],
                           self.values[:, :, None], flat[None, None, :])
        return jnp.reshape(copies, copies.shape[:2] + tuple(self.shape))


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
