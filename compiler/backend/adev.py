"""ADEV: unbiased gradient estimation of objectives by evaluation on dual numbers.

An objective's entry function is evaluated forward on dual numbers
``DV(primal, tangent, axes)`` (``tangent`` None means zero; ``axes`` the
enclosing plates whose axis the value has), in continuation-passing style:
each op has a rule in ``RULES`` (like the standard interpreter's table in
``standard.py``), and a rule either evaluates its equation in place or takes
the rest of the region as its continuation. At a ``draw`` (inside
``expect``), the site's estimator rule (``library.estimators``) receives the
site (``site.py``) and the continuation ``k`` (the rest of the block, as a
Python function) and returns the estimated ``(ℓ, ℓ̇)``. ANF makes the
continuation simply "the equations after this one".

- **Pure equations** go through ``jax.jvp`` of the standard rule, ``vmap``-ped
  over the plate axes their inputs have.
- **Plates** containing draws are entered, not mapped: their body is
  evaluated once, batched: a value carries the axes of the plates it varies
  over (``axes``, plate levels counted from the outermost), and a value that
  does not depend on a plate (an encoder's output inside a plate of
  particles) is never broadcast over it. A draw in a plate is one batched
  choice, and its continuation runs through the rest of the plate and past it.
- **REINFORCE** terms ``ℓ·s`` need the block's final value ℓ; the rule
  passes ``s`` to ``k`` and the interpreter accumulates it (``acc``), adding
  ``ℓ·S + T`` where the block ends. The same accumulation lets reparam and
  reinforce run inside ``for`` loops (``lax.scan``), where no continuation
  exists; a loop with an enum or mvd choice was unrolled before
  (``passes/unroll.py``), so its choices' continuations are the later steps.
- **Alternatives** (``Site.contract_alternatives``) need only the value ℓ of
  the continuation at other values of a choice: it runs ``values_only``,
  without tangents, so the choices after it call their continuation once
  (linear, not exponential, cost along an unrolled loop).
- **Traced ``if``**: a condition batched over plates selects elementwise
  between both branches (``lax.cond`` cannot be batched inside the custom
  JVP); an unbatched one is a ``lax.cond``.
- **Separable blocks** (``separable.py``): while a continuation is run with
  its plate sums weighted, the weighted ``sum`` equations are evaluated by
  ``separable.weighted_sum``.
- The whole objective is a ``jax.custom_jvp`` function whose primal is ADEV's
  value and whose JVP rule is this interpreter; ``jax.grad`` transposes the
  (linear in tangents) rule into reverse mode, and ``jax.jit`` compiles one
  XLA program.

Adding an op is one row of ``RULES``: ``rule(adev, eqn, env, at)`` reads its
inputs from ``env``, and either writes its outputs to ``env`` and returns
None (the next equation follows), or returns the block's ``(ℓ, ℓ̇)``, having
called ``at.rest(env, acc)`` for the equations after it.

    >>> # f = objective_function(program, library); jax.value_and_grad(f)(params, key, inputs)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..diagnostics import error
from ..ir import Eqn, Lit, Program, Region, Var, walk
from .plate_axes import full_levels as _full, lift as _lift, union as _union, vmap_levels as _vmap_levels
from .separable import weighted_sum
from .site import Site
from .standard import RULES as STANDARD_RULES, Interpreter


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


def _float_dtype(x):
    """The real dtype of a value: its own if inexact, else the default real (float32,
    or float64 under ``jax_enable_x64``)."""
    dt = jnp.result_type(x)
    return dt if jnp.issubdtype(dt, jnp.inexact) else jnp.result_type(float)


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


# ---------------------------------------------------------------- where a rule runs


@dataclass
class At:
    """Where in a block an equation is evaluated: ``region.eqns[j]``, under the region's
    ``key``, inside plates of sizes ``lead`` (outermost first), with the REINFORCE
    accumulator ``acc`` = (Σ scores, Σ shifts), ``k_end(env, acc)`` run where the
    region ends, and ``frames`` the (region, position) of each plate entered since the
    ``expect`` block (None inside a ``for`` loop). ``in_expect``: inside an ``expect``."""

    region: Region
    j: int
    key: Any
    lead: tuple
    acc: tuple
    k_end: Callable
    frames: tuple | None
    in_expect: bool

    @property
    def key_j(self):
        return jax.random.fold_in(self.key, self.j)

    @property
    def depth(self) -> int:
        return len(self.lead)


class ADEV:
    """The dual-number, continuation-passing interpreter of one objective."""

    def __init__(self, library, program: Program, params: dict, params_dot: dict | None):
        self.library = library
        self.program = program
        self.params = params
        self.params_dot = params_dot
        self.std = Interpreter(library, params, program)
        self.rules: dict[str, Callable] = dict(RULES)
        self.free_cache: dict = {}
        self.separable_cache: dict = {}
        # While a separable continuation is run weighted: the weights of its sums over
        # the plate axis (see Site._weighted).
        self.weights: dict | None = None
        # While continuations are run for their values only (``values_only``).
        self.primal_only = False

    # ---------------------------------------------------------- entry

    def run(self, key, inputs: list):
        """(value, tangent) of the entry function: its tangent None when it is zero."""
        fn = self.program.functions[self.program.entry]
        env = {p: self.from_input(a) for p, a in zip(fn.params, inputs)}
        out = self.cps(fn.body, 0, env, key, (), (None, None),
                       lambda env_end, acc: self.read(env_end, fn.body.outs[0]),
                       frames=(), in_expect=False)
        return out.primal, out.tangent

    def from_input(self, a):
        if isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], dict):
            return TraceDV({k: DV(v, None) for k, v in a[0].items()},
                           [DV(v, None) for v in a[1]])
        return DV(a, None)

    def param(self, path: str, stop: bool = False) -> DV:
        """A parameter's constrained value; ``stop``: held constant (read under ``detach``)."""
        info = self.program.params[path]
        c = self.library.constraint(info.constraint)
        u = self.params[path]
        u_dot = self.params_dot.get(path) if self.params_dot is not None else None
        if u_dot is None or stop or self.primal_only:
            return DV(c.to_constrained(u), None)
        p, t = jax.jvp(c.to_constrained, (u,), (u_dot,))
        return DV(p, t)

    def read(self, env: dict, a):
        if isinstance(a, Lit):
            return DV(a.value, None)
        return env[a]

    # ---------------------------------------------------------- blocks

    def cps(self, region: Region, j: int, env: dict, key, lead: tuple, acc, k_end,
            frames: tuple | None = (), in_expect: bool = True):
        """Evaluate ``region.eqns[j:]``, then ``k_end(env, acc)``; returns its result
        (inside ``expect``: the estimated (ℓ, ℓ̇))."""
        if self.primal_only:
            env, acc = {v: _primal(x) for v, x in env.items()}, (None, None)
        env = dict(env)
        at = At(region, j, key, lead, acc, k_end, frames, in_expect)
        while at.j < len(region.eqns):
            e = region.eqns[at.j]
            rule = self.rules.get(e.op)
            if rule is None:
                raise error(f"gradient estimation (ADEV) has no rule for the operation "
                            f"{e.op!r}", e.span)
            result = rule(self, e, env, at)
            if result is not None:
                return result
            at = replace(at, j=at.j + 1)
        return k_end(env, at.acc)

    @contextmanager
    def values_only(self):
        """Within it, continuations compute ℓ without its tangent: the rules that need
        ℓ at other values of a choice (``Site.contract_alternatives``) use only ℓ. The
        choices they meet then run without tangents too, so each calls its continuation
        once (an ``mvd`` choice no longer evaluates its alternatives), and the work of a
        chain of such choices (an unrolled loop) grows linearly, not exponentially."""
        saved, self.primal_only = self.primal_only, True
        try:
            yield
        finally:
            self.primal_only = saved

    def rest(self, at: At, env: dict, acc=None):
        """The equations after ``at``: the continuation of the equation there."""
        return self.cps(at.region, at.j + 1, env, at.key, at.lead, at.acc if acc is None else acc,
                        at.k_end, at.frames, at.in_expect)

    def expect(self, region: Region, env: dict, key):
        """The estimated (E[ℓ], ∂E[ℓ]) of an ``expect`` block."""
        def end(env_end, acc):
            ell = self.read(env_end, region.outs[0])
            s, t = acc
            tangent = _add(ell.tangent, None if s is None else ell.primal * s)
            return ell.primal, _add(tangent, t)

        value, tangent = self.cps(region, 0, env, key, (), (None, None), end)
        value = jnp.asarray(value)
        if not _is_float(value):  # E[k] of an int or bool block is a real
            value = value.astype(_float_dtype(value))
        if tangent is None:
            tangent = jnp.zeros_like(value)
        return value, jnp.asarray(tangent, value.dtype)

    def branch(self, region: Region, env: dict, at: At) -> list:
        """The outputs of a region without random choices (a branch), as dual values."""
        box = {}

        def end(env_end, acc):
            box["outs"] = [self.read(env_end, o) for o in region.outs]
            return ()

        self.cps(region, 0, env, at.key_j, at.lead, (None, None), end, None, at.in_expect)
        return box["outs"]

    # ---------------------------------------------------------- pure equations

    def pure(self, e: Eqn, env: dict, lead: tuple) -> None:
        """An equation without random choices: its standard rule, by jvp and vmap."""
        if self.weights and e in self.weights:
            v = self.read(env, e.args[0])
            w = self.weights[e]
            env[e.outs[0]] = DV(weighted_sum(v.primal, w),
                                None if v.tangent is None else weighted_sum(v.tangent, w))
            return
        free = [v for r in e.regions for v in free_vars(r, self.free_cache)]
        inputs = [self.read(env, a) for a in e.args] + [self.read(env, v) for v in free]
        inputs = [self.as_dv(x, lead) for x in inputs]
        n_args = len(e.args)
        std = self.std
        dummy_key = jax.random.PRNGKey(0)

        def f(*prims):
            closure = {v: p for v, p in zip(free, prims[n_args:])}
            return tuple(STANDARD_RULES[e.op](std, e, list(prims[:n_args]), dummy_key, closure))

        outs = self.apply(f, inputs)
        for v, o in zip(e.outs, outs):
            env[v] = o

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


# ---------------------------------------------------------------- the rules


def _pure(adev: ADEV, e: Eqn, env: dict, at: At):
    adev.pure(e, env, at.lead)


def _param(adev: ADEV, e: Eqn, env: dict, at: At):
    env[e.outs[0]] = adev.param(e.attrs["path"], e.attrs.get("stop", False))


def _draw(adev: ADEV, e: Eqn, env: dict, at: At):
    """A random choice: its estimator rule, given the site and the rest of the block."""
    if not at.in_expect:
        raise error("a random choice in an objective must be inside 'expect'", e.span)
    lead = at.lead
    site = Site(adev, e, [adev.read(env, a) for a in e.args], lead, at.key_j, (at.frames, at.j))
    rule = adev.library.estimators[e.attrs["estimator"]]

    def k(x, x_dot=None, score=None, shift=None):
        env2 = dict(env)
        env2[e.outs[0]] = DV(x, x_dot, _full(lead))
        return adev.rest(at, env2, (_add(at.acc[0], score), _add(at.acc[1], shift)))

    return rule(site, k)


def _plate(adev: ADEV, e: Eqn, env: dict, at: At):
    """A plate with random choices: continue inside its body, batched over its axis,
    then after the plate. Without random choices: a pure equation (a vmap)."""
    if not has_draws(e):
        return adev.pure(e, env, at.lead)
    region = e.regions[0]
    lead = at.lead
    level = len(lead) + 1
    inner_lead = lead + (e.attrs["size"],)
    inner = dict(env)
    inner[region.params[0]] = DV(jnp.arange(inner_lead[-1], dtype=jnp.int32), None, (level,))
    for p, a in zip(region.params[1:], e.args):
        # A mapped input's first own axis becomes this plate's axis: no copy.
        dv = adev.read(env, a)
        inner[p] = DV(dv.primal, dv.tangent, dv.axes + (level,))

    def stacked(dv):
        if isinstance(dv, TraceDV):  # a trace made in the plate: each value stacked
            return TraceDV({a: stacked(v) for a, v in dv.values.items()},
                           [stacked(v) for v in dv.retval])
        to = dv.axes if level in dv.axes else dv.axes + (level,)
        prim = _lift(dv.primal, dv.axes, to, inner_lead)
        tan = None if dv.tangent is None else _lift(dv.tangent, dv.axes, to, inner_lead)
        # Outside, this plate's axis is the value's first own axis.
        return DV(prim, tan, to[:-1])

    def k_plate(env_inner, acc2):
        env2 = dict(env)
        for out, o in zip(e.outs, region.outs):
            env2[out] = stacked(adev.read(env_inner, o))
        return adev.rest(at, env2, acc2)

    # Keys are not batched over plates: a choice in a plate is drawn as one batch.
    inner_frames = None if at.frames is None else at.frames + ((at.region, at.j),)
    return adev.cps(region, 0, inner, at.key_j, inner_lead, at.acc, k_plate, inner_frames,
                    at.in_expect)


def _scan(adev: ADEV, e: Eqn, env: dict, at: At):
    """A ``for`` loop with random choices: straight-line evaluation inside ``lax.scan``,
    accumulating the REINFORCE terms across iterations. Without: a pure equation."""
    if not has_draws(e):
        return adev.pure(e, env, at.lead)
    if at.depth:
        raise error("a for loop with random choices inside a plate, inside 'expect', is not "
                    "supported", e.span, help="move the loop out of the plate, or the plate "
                    "into the loop")
    if not at.in_expect:
        raise error("a random choice in an objective must be inside 'expect'", e.span)
    region = e.regions[0]
    n, c = e.attrs["length"], e.attrs["carries"]
    for sub in walk(region):
        if sub.op == "draw" and sub.attrs["estimator"] not in adev.library.estimator_tail:
            raise error(f"the estimator {sub.attrs['estimator']} cannot run inside a for loop "
                        "(it needs the rest of the block)", sub.span)
    args = [adev.read(env, a) for a in e.args]
    for a in args:
        if a.axes:
            raise error("a for loop with random choices inside a plate, inside 'expect', is "
                        "not supported", e.span)
    init = [(a.primal, a.tangent if a.tangent is not None else jnp.zeros_like(a.primal))
            if _is_float(a.primal) else (a.primal, None) for a in args[:c]]
    # The accumulator's dtype: the parameters' (the tangents are theirs).
    leaves = jax.tree_util.tree_leaves(adev.params)
    acc_dtype = jnp.result_type(*leaves) if leaves else jnp.result_type(float)
    zero = jnp.zeros((), acc_dtype)
    s0 = zero if at.acc[0] is None else jnp.asarray(at.acc[0])
    t0 = zero if at.acc[1] is None else jnp.asarray(at.acc[1])
    xs = args[c:]

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

        adev.cps(region, 0, inner, k, (), (s, t), end, None)
        outs = [adev.read(box["env"], o) for o in region.outs]
        new_state = tuple(
            (jnp.asarray(o.primal, jnp.result_type(st[0])),
             None if st[1] is None else
             (jnp.zeros_like(st[1]) if o.tangent is None else jnp.asarray(o.tangent, st[1].dtype)))
            for o, st in zip(outs[:c], state))
        ys = tuple((o.primal, o.tangent) for o in outs[c:])
        s2, t2 = box["acc"]
        s2 = s if s2 is None else jnp.asarray(s2, s.dtype)
        t2 = t if t2 is None else jnp.asarray(t2, t.dtype)
        return (new_state, s2, t2), ys

    keys = jax.random.split(at.key_j, n)
    x_prims = tuple(a.primal for a in xs)
    x_tans = tuple(a.tangent for a in xs)
    (final, s, t), ys = jax.lax.scan(
        step, (tuple(init), s0, t0), (jnp.arange(n, dtype=jnp.int32), keys, x_prims, x_tans))
    for out, (prim, tan) in zip(e.outs[:c], final):
        env[out] = DV(prim, tan)
    for out, (prim, tan) in zip(e.outs[c:], ys):
        env[out] = DV(prim, tan)
    at.acc = (s, t)


def _cond(adev: ADEV, e: Eqn, env: dict, at: At):
    """A traced ``if``: both branches evaluated as dual values, then selected.

    Each branch sees the tangents of its inputs masked to zero where it is not taken,
    so that a derivative that is not finite in the untaken branch (``sqrt`` of a
    negative) cannot turn the transposed gradient into NaN. A ``lax.cond`` under the
    custom JVP cannot be used: batched (over a plate, or by enum's ``vmap`` over the
    support) it applies ``stop_gradient`` to its tangents, which cannot be transposed.
    Without tangents, the standard rule (a ``lax.cond``) runs.
    """
    if has_draws(e):
        raise error("a random choice under a traced condition is not supported", e.span,
                    help="select values with where(c, a, b), or make the condition static")
    pred = adev.read(env, e.args[0])
    free = list(dict.fromkeys(v for r in e.regions for v in free_vars(r, adev.free_cache)))
    if all(_no_tangent(adev.read(env, v)) for v in free):
        return adev.pure(e, env, at.lead)
    branches = []
    for region, taken in zip(e.regions, (True, False)):
        inner = dict(env)
        for v in free:
            inner[v] = _masked(adev.read(env, v), pred, taken, at.lead)
        branches.append(adev.branch(region, inner, at))
    for out, a, b in zip(e.outs, *branches):
        env[out] = _select(pred, adev.as_dv(a, at.lead), adev.as_dv(b, at.lead), at.lead)


def _primal(x):
    """A dual value (or a trace of them) without its tangent."""
    if isinstance(x, TraceDV):
        return TraceDV({a: _primal(v) for a, v in x.values.items()}, [_primal(v) for v in x.retval])
    return x if x.tangent is None else DV(x.primal, None, x.axes)


def _no_tangent(x) -> bool:
    if isinstance(x, TraceDV):
        return all(_no_tangent(v) for v in list(x.values.values()) + list(x.retval))
    return x.tangent is None


def _masked(x, pred: DV, taken: bool, lead: tuple):
    """``x`` with its tangent zero where ``pred`` is not ``taken``."""
    if isinstance(x, TraceDV):
        return TraceDV({a: _masked(v, pred, taken, lead) for a, v in x.values.items()},
                       [_masked(v, pred, taken, lead) for v in x.retval])
    if x.tangent is None:
        return x
    axes = _union([x.axes, pred.axes])
    c = jnp.asarray(_lift(pred.primal, pred.axes, axes, lead))
    if not taken:
        c = jnp.logical_not(c)

    def mask(t):
        t = _lift(t, x.axes, axes, lead)
        return jnp.where(jnp.reshape(c, c.shape + (1,) * (jnp.ndim(t) - c.ndim)), t,
                         jnp.zeros_like(t))

    return DV(_lift(x.primal, x.axes, axes, lead), jax.tree_util.tree_map(mask, x.tangent), axes)


def _select(pred: DV, a: DV, b: DV, lead: tuple) -> DV:
    """``where(pred, a, b)`` of dual values, over the union of their plate axes."""
    axes = _union([pred.axes, a.axes, b.axes])
    c = jnp.asarray(_lift(pred.primal, pred.axes, axes, lead))

    def pick(x, y):
        def where(u, v):
            if getattr(u, "dtype", None) == jax.dtypes.float0:  # an int's tangent
                own = np.shape(u)[len(a.axes):]
                return np.zeros(tuple(lead[l - 1] for l in axes) + own, jax.dtypes.float0)
            u, v = _lift(u, a.axes, axes, lead), _lift(v, b.axes, axes, lead)
            return jnp.where(jnp.reshape(c, c.shape + (1,) * (jnp.ndim(u) - c.ndim)), u, v)

        return jax.tree_util.tree_map(where, x, y)

    def tangent(dv):
        if dv.tangent is not None:
            return dv.tangent
        return jax.tree_util.tree_map(lambda p: jnp.zeros_like(p) if _is_float(p) else
                                      np.zeros(np.shape(p), jax.dtypes.float0), dv.primal)

    primal = pick(a.primal, b.primal)
    if a.tangent is None and b.tangent is None:
        return DV(primal, None, axes)
    return DV(primal, pick(tangent(a), tangent(b)), axes)


def _expect(adev: ADEV, e: Eqn, env: dict, at: At):
    """An ``expect`` block: its estimate (E[ℓ], ∂E[ℓ]). Inside plates, one independent
    estimate per element: the block is ``vmap``-ped over the plate axes, each element with
    a key of its own, so the rest of its block (an enumerated choice's continuation, a
    score's ℓ) is that element's alone and costs what one element's does."""
    region = e.regions[0]
    if not at.depth:
        value, tangent = adev.expect(region, env, at.key_j)
        env[e.outs[0]] = DV(value, tangent)
        return
    free = free_vars(region, adev.free_cache)
    leaves, rebuild = _flatten_duals([adev.read(env, v) for v in free])
    with_tangent = [i for i, x in enumerate(leaves) if x.tangent is not None]
    lead = at.lead
    keys = jax.random.split(at.key_j, int(np.prod(lead)))
    keys = jnp.reshape(keys, lead + keys.shape[1:])

    def one(key, *arrays):
        prims, tans = arrays[:len(leaves)], dict(zip(with_tangent, arrays[len(leaves):]))
        inner = dict(env)
        inner.update(zip(free, rebuild([DV(p, tans.get(i)) for i, p in enumerate(prims)])))
        return adev.expect(region, inner, key)

    levels = _full(lead)
    axes_list = [levels] + [x.axes for x in leaves] + [leaves[i].axes for i in with_tangent]
    value, tangent = _vmap_levels(one, axes_list, levels)(
        keys, *[x.primal for x in leaves], *[leaves[i].tangent for i in with_tangent])
    no_tangent = adev.primal_only or (adev.params_dot is None and not with_tangent)
    env[e.outs[0]] = DV(value, None if no_tangent else tangent, levels)


def _flatten_duals(values: list) -> tuple[list[DV], Callable]:
    """The dual arrays of ``values`` (traces opened into their leaves), and the function
    that puts a list of such arrays back together in the same structure."""
    leaves: list[DV] = []
    shapes = []

    def flatten(x):
        if isinstance(x, TraceDV):
            names = list(x.values)
            return ("trace", names, [flatten(x.values[a]) for a in names],
                    [flatten(r) for r in x.retval])
        leaves.append(x)
        return len(leaves) - 1

    shapes = [flatten(x) for x in values]

    def build(shape, new):
        if isinstance(shape, int):
            return new[shape]
        _, names, vals, rets = shape
        return TraceDV({a: build(v, new) for a, v in zip(names, vals)}, [build(r, new) for r in rets])

    return leaves, lambda new: [build(s, new) for s in shapes]


def _make_trace(adev: ADEV, e: Eqn, env: dict, at: At):
    args = [adev.read(env, a) for a in e.args]
    n = len(e.attrs["addresses"])
    env[e.outs[0]] = TraceDV(dict(zip(e.attrs["addresses"], args[:n])), args[n:])


def _as_trace(t) -> TraceDV:
    if isinstance(t, TraceDV):
        return t
    return TraceDV({a: DV(v, None, t.axes) for a, v in t.primal[0].items()},
                   [DV(v, None, t.axes) for v in t.primal[1]])


def _trace_retval(adev: ADEV, e: Eqn, env: dict, at: At):
    t = _as_trace(adev.read(env, e.args[0]))
    for out, v in zip(e.outs, t.retval):
        env[out] = v


def _trace_get(adev: ADEV, e: Eqn, env: dict, at: At):
    t = _as_trace(adev.read(env, e.args[0]))
    a = e.attrs["address"]
    if a in t.values:
        env[e.outs[0]] = t.values[a]
    else:
        prefix = a + "/"
        env[e.outs[0]] = TraceDV({k[len(prefix):]: v for k, v in t.values.items()
                                  if k.startswith(prefix)}, [])


RULES: dict[str, Callable] = {
    "draw": _draw, "plate": _plate, "scan": _scan, "cond": _cond, "expect": _expect,
    "param": _param, "make_trace": _make_trace, "trace_get": _trace_get,
    "trace_retval": _trace_retval,
    # Pure equations: the standard rule on dual numbers.
    "fn": _pure, "index": _pure, "logpdf": _pure, "init": _pure,
}


# ---------------------------------------------------------------- the objective


def objective_function(program: Program, library) -> Callable:
    """``f(params, key, inputs) -> value``: ADEV's estimate of the objective, whose JVP
    is ADEV's gradient estimate (so ``jax.grad(f)`` is unbiased, not the naive
    derivative of a sampled value, and ``f`` honours ``enum``)."""
    def out_dtype(value):
        return _float_dtype(value)

    @jax.custom_jvp
    def f(params, key, inputs):
        value, _ = ADEV(library, program, params, None).run(key, inputs)
        return jnp.asarray(value, out_dtype(value))

    @f.defjvp
    def f_jvp(primals, tangents):
        params, key, inputs = primals
        params_dot = tangents[0]
        value, tangent = ADEV(library, program, params, params_dot).run(key, inputs)
        value = jnp.asarray(value, out_dtype(value))
        if tangent is None:
            tangent = jnp.zeros_like(value)
        return value, jnp.asarray(tangent, value.dtype)

    return f
