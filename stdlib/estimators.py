"""Gradient estimators: one short rule per estimator, against an explicit continuation.

ADEV (Lew et al., POPL 2023) evaluates an ``expect`` block forward on dual
numbers. At a random choice it calls the site's estimator rule with

- ``site``: the distribution at its dual arguments, through the interface
  declared once as ``ppl.compiler.library.EstimatorSite`` (one line per
  operation there): ``sample()``, ``rsample()`` (value and tangent of a
  pathwise sample), ``score(x)`` (the tangent of ``log d(x; θ)`` summed over
  elements; ``element_scores(x)`` per element), ``with_terms_along(k, x, d)``
  and ``enumerate_separable(k)`` (when the block is a sum over the plate's
  elements), ``support()``, ``probs()``, ``alternatives(x, values)``,
  ``contract_alternatives(k, alts, coef)``, ``evaluate_alternatives(k,
  alts)``, ``baseline``, and ``distribution``, the family's row (its weak
  derivative, below). Rules use nothing else (tests/adev/test_site_protocol.py);
- ``k``: the continuation — the rest of the block — as a function
  ``k(x, x_dot, score=None, shift=None) -> (ℓ, ℓ̇)``. ``score`` is a tangent
  to be multiplied by the block's final value ℓ (the REINFORCE term), added
  by the interpreter where the block ends; ``shift`` is a tangent added as
  it is. Both are linear in parameter tangents.

A rule returns the estimated (ℓ, ℓ̇); its expectation is the exact
(E[ℓ], ∂E[ℓ]). Rules that only call ``k`` once, last (``TAIL`` below), also
work inside ``for`` loops kept as ``lax.scan``, where the continuation is not
available; a loop with a choice of any other rule is unrolled first
(compiler/passes/unroll.py).

``ESTIMATORS`` is the registry: the one place estimator names are written.
The compiler reads the names (and ``TAIL``) from the library it is given.

    >>> sorted(ESTIMATORS)
    ['enum', 'mvd', 'reinforce', 'reparam']
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _plus(a, b):
    """a + b, where None is a zero tangent."""
    return b if a is None else a if b is None else a + b


def _dual(ell, ell_dot):
    """(ℓ, ℓ̇) with ℓ̇ in ℓ's dtype (a dual pair; terms of a rule may be float64 when ℓ is
    float32, or the reverse, under ``jax_enable_x64``)."""
    if ell_dot is None or not jnp.issubdtype(jnp.result_type(ell), jnp.inexact):
        return ell, ell_dot
    return ell, jnp.asarray(ell_dot, jnp.result_type(ell))


def reparam(site, k):
    """x = T(ε; θ), ẋ = ∂T/∂θ·θ̇ (pathwise; implicit for gamma, beta, dirichlet)."""
    x, x_dot = site.rsample()
    return k(x, x_dot)


def reinforce(site, k):
    """x ~ d(θ); ℓ̇ += (ℓ − b)·∂log d(x; θ)·θ̇ (Williams 1992).

    A learned baseline b is fitted by the same step: its own tangent ḃ
    enters as (ℓ − b)·ḃ, the gradient of −(ℓ − b)²/2, which moves b
    towards E[ℓ] without touching other parameters' gradients.

    In a plate whose block is a sum over the elements, ℓ = Σ_i c_i(x_i) + r
    (an ELBO over a data plate), and with no baseline, each element's score
    is multiplied by its own term only: ℓ̇ += Σ_i c_i(x_i)·∂log d(x_i; θ)·θ̇.
    The rest of ℓ is independent of x_i, so its product with x_i's score has
    mean zero (Rao-Blackwellisation over the plate, as TraceGraph_ELBO does).
    """
    x = site.sample()
    b, b_dot = site.baseline
    if b is None and b_dot is None:
        rao_blackwellised = site.with_terms_along(k, x, site.element_scores(x))
        if rao_blackwellised is not None:
            return _dual(*rao_blackwellised)
    s = site.score(x)
    score = _plus(s, b_dot)
    if b is None or score is None:
        return k(x, None, score=score)
    # (a running baseline's weight counts this use: see ParamInfo.weight_of)
    return k(x, None, score=score, shift=_plus(-b * score, site.baseline_weight))


def enum(site, k):
    """Exact sum over the support: Σ_v p_v ℓ_v, tangent Σ_v (ṗ_v ℓ_v + p_v ℓ̇_v).

    For a choice of several elements (a plate, or array parameters) the joint
    support is exponential. When the block is a sum over the plate's elements
    (ℓ = Σ_i c_i(x_i) + r), the sum over the joint support is still exact, from
    |support| + 1 forward runs of k, vectorised (``site.enumerate_separable``). Otherwise each
    element is enumerated with the others at their sampled values (local
    expectation gradients, Titsias & Lázaro-Gredilla 2015):
    ℓ̇ += Σ_i Σ_v ṗ_i(v)·ℓ(x with x_i = v), unbiased, n·|support| runs of k.
    """
    values = site.support()
    if site.size == 1:
        p, p_dot = site.probs()
        x_of = lambda v: jnp.full(site.shape, v, site.dtype)  # noqa: E731
        ls, l_dots = jax.vmap(lambda v: k(x_of(v), None))(values)
        p, p_dot = p.reshape(-1), None if p_dot is None else p_dot.reshape(-1)
        l_dot = None if l_dots is None else jnp.sum(p * l_dots)
        return _dual(jnp.sum(p * ls), l_dot if p_dot is None else _plus(l_dot, jnp.sum(p_dot * ls)))
    exact = site.enumerate_separable(k)
    if exact is not None:
        return _dual(*exact)
    p, p_dot = site.probs()
    x = site.sample()
    ell, ell_dot = k(x, None)
    if p_dot is None:
        return ell, ell_dot
    alts = site.alternatives(x, values)
    return _dual(ell, _plus(ell_dot, site.contract_alternatives(k, alts, p_dot.reshape(alts.values.shape))))


def mvd(site, k):
    """Measure-valued derivative: ℓ̇ += Σ_i c_i·(ℓ(x with x_i ~ μ⁺_i) − ℓ(x with x_i ~ μ⁻_i)).

    The weak derivative of each distribution (Pflug 1996; Mohamed et al. 2020)
    is its row's ``weak_derivative`` (one of the functions below); each element
    of a batched choice is perturbed with the others at their sampled values.
    """
    x = site.sample()
    ell, ell_dot = k(x, None)
    extra = site.distribution.weak_derivative(site, x, k)
    return _dual(ell, _plus(ell_dot, extra))


# ---------------------------------------------------------------- weak derivatives
# Each returns the tangent Σ_i ∂θ_i·(weak derivative), or None when θ has no tangent. The
# distribution rows (distributions.py) name theirs; a row without one has no mvd.


def finite_support_weak_derivative(site, x, k):
    """bernoulli, categorical: ∂E = Σ_v ṗ(v)·ℓ(x_i = v) (the positive/negative parts
    of the derivative of a finite pmf are point masses)."""
    p, p_dot = site.probs()
    if p_dot is None:
        return None
    alts = site.alternatives(x, site.support())
    return site.contract_alternatives(k, alts, p_dot.reshape(alts.values.shape))


def poisson_weak_derivative(site, x, k):
    """poisson(λ): ∂λ E f(X) = E[f(X + 1) − f(X)]."""
    (rate, rate_dot), = site.args_dual(("rate",))
    if rate_dot is None:
        return None
    c = site.per_element(rate_dot).reshape(-1, 1)
    return (site.contract_alternatives(k, site.alternatives(x, None, shift=1), c)
            - site.contract_alternatives(k, site.alternatives(x, None, shift=0), c))


def geometric_weak_derivative(site, x, k):
    """geometric(p) (failures before a success): ∂p E f(X) = E[f(X) − f(X + X')]/(p(1 − p)),
    X' an independent geometric(p)."""
    p, p_dot = site.probs_parameter()
    if p_dot is None:
        return None
    extra = site.sample(salt=1)
    pe, pde = site.per_element(p).reshape(-1, 1), site.per_element(p_dot).reshape(-1, 1)
    c = pde / (pe * (1 - pe))
    return (site.contract_alternatives(k, site.alternatives(x, None, shift=0), c)
            - site.contract_alternatives(k, site.alternatives(x, None, add=extra), c))


def _probability(site, probs: str = "probs", logits: str = "logits"):
    """(p, ṗ) of a family's probability given as ``probs`` or as ``logits`` (sigmoid)."""
    if probs in site.form:
        (value, tangent), = site.args_dual((probs,))
        return value, tangent
    (value, tangent), = site.args_dual((logits,))
    if tangent is None:
        return jax.nn.sigmoid(value), None
    return jax.jvp(jax.nn.sigmoid, (value,), (tangent,))


def _column(site, a):
    """A parameter (primal or tangent) per element, as a [size, 1] coefficient column."""
    return site.per_element(a).reshape(-1, 1)


def binomial_weak_derivative(site, x, k):
    """binomial(n, p) (or logits): ∂p E f(X) = n·E[f(Y + 1) − f(Y)], Y ~ binomial(n − 1, p).

    Y is the draw x less one of its n trials chosen uniformly (a success with probability
    x / n), which is exactly a binomial(n − 1, p): no second draw, and n may be traced."""
    p, p_dot = _probability(site)
    if p_dot is None:
        return None
    (n, _), = site.args_dual(("total_count",))
    n = site.per_element(jnp.asarray(n, jnp.result_type(float)))
    xf = jnp.asarray(x, n.dtype)
    u = jax.random.uniform(site.key_for(1), n.shape)
    y = x - (u * n < xf).astype(x.dtype)  # one trial removed: a success with probability x / n
    c = _column(site, n * p_dot)
    return (site.contract_alternatives(k, site.alternatives(x, None, set_to=y + 1), c)
            - site.contract_alternatives(k, site.alternatives(x, None, set_to=y), c))


def negative_binomial_weak_derivative(site, x, k):
    """negative_binomial(r, p) (successes of probability p before r failures; or logits):
    ∂p E f(X) = r/(1 − p)·E[f(X + G + 1) − f(X)], G an independent draw with
    P(G = g) = p^g (1 − p) (so X + G ~ negative_binomial(r + 1, p): the derivative of the
    pmf is r/(1 − p)·(pmf_{r+1}(x − 1) − pmf_r(x))). A learned ``total_count`` has no weak
    derivative in closed form: its tangent enters by the score function,
    E[f(X)·∂r log p(X)], ∂r log p(x) = ψ(x + r) − ψ(r) + log(1 − p)."""
    p, p_dot = _probability(site)
    (r, r_dot), = site.args_dual(("total_count",))
    total = None
    if p_dot is not None:
        pe = site.per_element(p)
        # P(G = g) = p^g (1 − p): the trials before the first of probability 1 − p
        g = (jax.random.geometric(site.key_for(1), 1.0 - pe, pe.shape) - 1).astype(pe.dtype)
        c = _column(site, r * p_dot / (1 - p))
        total = (site.contract_alternatives(k, site.alternatives(x, None, add=g + 1), c)
                 - site.contract_alternatives(k, site.alternatives(x, None, shift=0), c))
    if r_dot is not None:
        xf = jnp.asarray(x, jnp.result_type(float))
        re, pe = site.per_element(r), site.per_element(p)
        score = (jax.scipy.special.digamma(xf + re) - jax.scipy.special.digamma(re)
                 + jnp.log1p(-pe))
        c = (score * site.per_element(r_dot)).reshape(-1, 1)
        term = site.contract_alternatives(k, site.alternatives(x, None, shift=0), c)
        total = term if total is None else total + term
    return total


def zero_inflated_poisson_weak_derivative(site, x, k):
    """zero_inflated_poisson(g, λ) (or gate_logits): 0 with probability g, else Y ~ poisson(λ):
    ∂g E f = f(0) − E f(Y), ∂λ E f = (1 − g)·E[f(Y + 1) − f(Y)], with Y a fresh poisson(λ)."""
    g, g_dot = _probability(site, "gate", "gate_logits")
    (rate, rate_dot), = site.args_dual(("rate",))
    if g_dot is None and rate_dot is None:
        return None
    rate_e = site.per_element(rate)
    y = jax.random.poisson(site.key_for(1), rate_e).astype(x.dtype)
    c_gate = None if g_dot is None else _column(site, g_dot)
    c_rate = None if rate_dot is None else _column(site, (1 - g) * rate_dot)
    at_y = _plus(c_gate, c_rate)
    total = -site.contract_alternatives(k, site.alternatives(x, None, set_to=y), at_y)
    if c_gate is not None:
        zero = site.alternatives(x, None, set_to=jnp.zeros_like(y))
        total = total + site.contract_alternatives(k, zero, c_gate)
    if c_rate is not None:
        total = total + site.contract_alternatives(k, site.alternatives(x, None, set_to=y + 1),
                                                   c_rate)
    return total


def normal_weak_derivative(site, x, k):
    """normal(μ, σ): ∂μ E f = E[f(μ + σR) − f(μ − σR)]/(σ√(2π)), R ~ Rayleigh(1);
    ∂σ E f = E[f(μ + σM) − f(x)]/σ, M ~ double-sided Maxwell, x the sample."""
    (loc, loc_dot), (scale, scale_dot) = site.args_dual(("loc", "scale"))
    loc_e, scale_e = site.per_element(loc), site.per_element(scale)
    u = jax.random.uniform(site.key_for(1), loc_e.shape, minval=1e-12, maxval=1.0)
    rayleigh = jnp.sqrt(-2.0 * jnp.log(u))
    chi3 = jnp.sqrt(jnp.sum(jax.random.normal(site.key_for(2), loc_e.shape + (3,)) ** 2, -1))
    sign = jnp.where(jax.random.bernoulli(site.key_for(3), 0.5, loc_e.shape), 1.0, -1.0)
    total = None
    if loc_dot is not None:
        c = (site.per_element(loc_dot) / (scale_e * math.sqrt(2 * math.pi))).reshape(-1, 1)
        up = site.alternatives(x, None, set_to=loc_e + scale_e * rayleigh)
        down = site.alternatives(x, None, set_to=loc_e - scale_e * rayleigh)
        total = site.contract_alternatives(k, up, c) - site.contract_alternatives(k, down, c)
    if scale_dot is not None:
        c = (site.per_element(scale_dot) / scale_e).reshape(-1, 1)  # alternatives are flat
        plus = site.alternatives(x, None, set_to=loc_e + scale_e * sign * chi3)
        term = (site.contract_alternatives(k, plus, c)
                - site.contract_alternatives(k, site.alternatives(x, None, shift=0), c))
        total = term if total is None else total + term
    return total


# The estimator registry: the one place estimator names are written. ``ESTIMATORS`` maps
# each name (in the order messages list them) to its rule; ``TAIL`` holds the rules whose
# only call of k is their last act (they work inside a for loop without unrolling it).
ESTIMATORS = {"reparam": reparam, "reinforce": reinforce, "enum": enum, "mvd": mvd}
TAIL = frozenset({"reparam", "reinforce"})
assert TAIL <= set(ESTIMATORS)
