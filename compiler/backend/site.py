"""A random choice as its estimator rule sees it: the ``Site`` protocol's implementation.

ADEV (``adev.py``) builds a :class:`Site` at each ``draw`` inside ``expect``
and hands it, with the continuation, to the estimator rule
(``stdlib/estimators.py``). The site knows the distribution at its dual
arguments (broadcast over the enclosing plates), draws from it, scores
values, lists alternatives of a batched choice, and, when the rest of the
block is a sum over the plate's elements (``separable.py``), evaluates the
continuation weighted, so per-element terms are never materialised.

    >>> # inside a rule: x = site.sample(); return k(x, None, score=site.score(x))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..ir import Eqn, Lit
from .plate_axes import full_levels as _full, lift as _lift
from .separable import separable_sums

if TYPE_CHECKING:
    from .adev import ADEV, DV


def _common_real(*arrays):
    """The floating dtype of ``arrays`` (those that are floats), else the default float
    (float32, or float64 under ``jax_enable_x64``): never a dtype written in."""
    floats = [a for a in arrays if a is not None and jnp.issubdtype(jnp.result_type(a), jnp.inexact)]
    return jnp.dtype(jnp.result_type(*floats)) if floats else jnp.dtype(jnp.result_type(float))


class Site:
    """A random choice as its estimator rule sees it (see stdlib/estimators.py); it
    implements ``ppl.compiler.library.EstimatorSite``.

    A choice inside plates is one batched choice: its parameters are
    broadcast over the plate axes (``shape`` = plate axes + value shape) and
    it is drawn with one key, as numpyro draws a batch. Everything about the
    distribution (its support, the probability of each support value, its
    log density, its weak derivative) comes from its row in the library
    (``self.distribution``): nothing here is written for one family.
    """

    # Use the separability of a continuation (separable.py): alternatives of a choice in
    # O(N·M) rather than O(N²·M), and per-element REINFORCE. Tests switch it off to compare.
    use_separability = True

    def __init__(self, adev: "ADEV", eqn: Eqn, args: list["DV"], lead: tuple, key, where=(None, 0)):
        self.adev = adev
        self.eqn = eqn
        self.frames, self.position = where
        self.dist_name = eqn.attrs["dist"]
        self.distribution = adev.library.distributions[self.dist_name]
        self.form = eqn.attrs["form"]
        self.depth = depth = len(lead)
        self.key = key
        self.value_type = eqn.outs[0].type
        self.shape = lead + tuple(self.value_type.shape)
        self.dtype = self.value_type.dtype
        self.size = int(np.prod(self.shape)) if self.shape else 1
        # Plate axes go in front of each parameter's own batch axes, which numpyro aligns
        # on the right: normal(loc[2], scale) in a plate of 3 has loc [3, 2], scale [3, 1].
        ranks = getattr(self.distribution, "ranks", {})
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
        # The dtype of weights and coefficients: the parameters' (float64 only where they are).
        self.real_dtype = _common_real(*self.primals)
        # Literal arguments stay Python values: a finite support's size may depend on one
        # (binomial's total_count), and the row decides what it needs (``_bound``).
        self.literals = {i: a.value for i, a in enumerate(eqn.args[:len(self.form)]) if isinstance(a, Lit)}
        extra = args[len(self.form):]
        baseline = eqn.attrs.get("baseline")
        if extra:
            self.baseline = (jnp.asarray(extra[0].primal), extra[0].tangent)
        elif baseline is not None:
            self.baseline = (baseline, None)
        else:
            self.baseline = (None, None)
        # A running baseline's weight: its tangent, added once to the block's value per
        # use, makes the weight's gradient Σ_u c_u (see ParamInfo.weight_of).
        self.baseline_weight = extra[1].tangent if len(extra) > 1 else None

    def _bound(self, args):
        """The distribution's arguments: ``args`` (primals, possibly being differentiated),
        with each literal argument as the Python value the program wrote."""
        return [self.literals.get(i, a) for i, a in enumerate(args)]

    def _dist(self, args):
        """numpyro's distribution at ``args`` (for its pathwise sampler)."""
        return self.distribution.build(self.form, self._bound(args))

    def _log_prob(self, args, x):
        """The row's log density of x (exact derivatives), per batch element."""
        return self.distribution.log_prob(self.form, self._bound(args), x)

    @property
    def batch_shape(self):
        """The shape of the choice's independent elements: ``shape`` without the value's
        event axes (``mvnormal_diag``'s vector, ``dirichlet``'s simplex)."""
        event = len(self._dist(self.primals).event_shape)
        return self.shape[:len(self.shape) - event]

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

    def _batched(self, d):
        """``d`` with one independent element per element of the choice: parameters that
        are literals (or lack a plate's axis) give a smaller batch, whose single draw
        must not be broadcast over the plate."""
        batch = self.shape[:len(self.shape) - len(d.event_shape)]
        return d if tuple(d.batch_shape) == batch else d.expand(batch)

    def sample(self, salt: int = 0):
        key = self.key if not salt else jax.random.fold_in(self.key, 7919 * salt)
        x = self._batched(self._dist(self.primals)).sample(key)
        return jax.lax.stop_gradient(x.astype(self.dtype))

    def rsample(self):
        return self._jvp(lambda *a: self._batched(self._dist(a)).rsample(self.key))

    def score(self, x):
        """Σ over elements of the tangent of log d(x; θ) (None if θ has no tangent)."""
        return self._jvp(lambda *a: jnp.sum(self._log_prob(a, x)))[1]

    def element_scores(self, x):
        """The tangent of log d(x_i; θ) per independent element (``batch_shape``), flat
        (None if θ has no tangent)."""
        batch = self.batch_shape
        return self._jvp(lambda *a: jnp.reshape(
            jnp.broadcast_to(self._log_prob(a, x), batch), (-1,)))[1]

    def support(self):
        """The finite support's values (int32), from the distribution's row."""
        return self.distribution.support_values(self.form, self._bound(self.primals))

    def probs(self):
        """Dual probabilities of each support value, shape ``shape + [V]`` (the row's
        formula, whose derivative is exact at boundary points such as logits 0)."""
        n_values = len(self.support())
        return self._jvp(lambda *a: jnp.broadcast_to(
            self.distribution.probs(self.form, self._bound(a)), self.shape + (n_values,)))

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
        real = _common_real(ell, ell_dot)  # ℓ and ℓ̇ in one dtype: they are a dual pair
        zero = jnp.zeros((), real)
        return (zero if ell is None else jnp.asarray(ell, real),
                zero if ell_dot is None else jnp.asarray(ell_dot, real))

    def _along(self, k, y, w, d, sums):
        """(ℓ(y; w), ℓ̇(y; w), Σ_i d_i·c_i(y_i)): a weighted run and its derivative along
        w = d (d linear in tangents; the derivative of ℓ̇ along d is dropped)."""
        (ell, ell_dot), (derivative, _) = jax.jvp(lambda w: self._weighted(k, y, w, sums),
                                                  (w,), (jnp.asarray(d, w.dtype),))
        return ell, ell_dot, derivative

    def with_terms_along(self, k, y, direction):
        """(ℓ(y), ℓ̇(y) + Σ_i d_i·c_i(y_i)) when the block is separable, for a direction d
        (flat, linear in tangents, or None); None otherwise, without running ``k``. One
        run of the block: the per-element terms are never materialised."""
        sums = self.separable_sums()
        if sums is None:
            return None
        ones = jnp.ones((self.size,), self.real_dtype)
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
            jnp.zeros((1, self.size), self.real_dtype)]).astype(self.real_dtype)
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
        with self.adev.values_only():
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
        ones = jnp.ones((self.size,), self.real_dtype)
        coef = jnp.asarray(coef, self.real_dtype)
        ys = jnp.reshape(jnp.swapaxes(alts.values, 0, 1), (-1,) + self.shape)  # [M, *shape]
        with self.adev.values_only():  # derivatives along the weights only, not ℓ̇
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
