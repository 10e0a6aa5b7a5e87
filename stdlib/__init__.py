"""The standard library: distributions, builtin functions, initialisers, constraints and objectives."""

import math


def _objective(name: str, p, q, **kwargs):
    """Apply the standard objective ``name`` to a target and a family from one program."""
    from ..compiler.diagnostics import DataError, Diagnostic

    def is_gen(x):
        return hasattr(x, "module") and hasattr(x, "gen_value")

    if not (is_gen(p) and is_gen(q)):
        bad = "p" if not is_gen(p) else "q"
        raise DataError(Diagnostic(
            f"{name}(p, q) takes generative functions of a loaded program, but {bad} is "
            f"{type(p if bad == 'p' else q).__name__}",
            help="e.g. ppl.stdlib.elbo(m.model(N) | {\"y\": y}, m.guide())"))
    if p.module is not q.module:
        raise DataError(Diagnostic(f"{name}(p, q): p and q come from different programs",
                                   help="declare the model and the family in one program"))
    return p.module.objective(name, (p, q), kwargs)


def _particles(name: str, K, least: int = 1, why: str = "") -> int:
    """Check a particle count ``K``: an integer (a Python or NumPy one) of at least
    ``least`` (a plate of no particles would make the bound's log-mean-exp NaN, not
    an error). Returns it as a Python int."""
    import numbers

    from ..compiler.diagnostics import DataError, Diagnostic

    integral = isinstance(K, numbers.Integral) and not isinstance(K, bool)
    if not integral or K < least:
        raise DataError(Diagnostic(
            f"{name}(): K must be an integer of at least {least}{why}, got {K!r}",
            help=f"e.g. ppl.stdlib.{name}(p, q, K=8, ...)"))
    return int(K)


def elbo(p, q):
    """The evidence lower bound E_q[log p(z, x) − log q(z)] (see objectives.ppl).

    >>> # obj = ppl.stdlib.elbo(m.model(N) | {"y": y}, m.guide())
    """
    return _objective("elbo", p, q)


def iwelbo(p, q, K: int):
    """The importance-weighted bound with ``K`` particles (IWAE; see objectives.ppl)."""
    K = _particles("iwelbo", K)
    return _objective("iwelbo", p, q, K=K)


def stl(p, q):
    """The ELBO with the "sticking the landing" gradient (Roeder et al. 2017; see objectives.ppl).

    Same value and expected gradient as :func:`elbo`; ``log q`` is scored with
    ``q``'s parameters held constant (``detach``), so the gradient's variance
    vanishes as ``q`` approaches the posterior.

    >>> # obj = ppl.stdlib.stl(m.model(N) | {"y": y}, m.guide())
    """
    return _objective("stl", p, q)


def dreg(p, q, K: int):
    """The IWAE bound with doubly reparameterised gradients (Tucker et al. 2019; see objectives.ppl).

    Same value and expected gradient as :func:`iwelbo`; the family's gradient has
    far lower variance. ``q``'s choices must be reparameterisable (a compile error
    names any that is not).

    >>> # obj = ppl.stdlib.dreg(m.model(N) | {"y": y}, m.guide(), K=16)
    """
    K = _particles("dreg", K)
    return _objective("dreg", p, q, K=K)


def vimco(p, q, K: int):
    """The IWAE bound with VIMCO's leave-one-out gradient (Mnih & Rezende 2016; see objectives.ppl).

    For families with discrete choices: iwelbo's value and expected gradient, each
    particle's score weighted by its own learning signal. ``K`` must be at least 2.

    >>> # obj = ppl.stdlib.vimco(m.model(N) | {"y": y}, m.guide(), K=8)
    """
    K = _particles("vimco", K, 2, " (its leave-one-out baseline needs other particles)")
    return _objective("vimco", p, q, K=K)


def renyi(p, q, K: int, alpha: float):
    """Rényi's α-divergence bound with ``K`` particles (Li & Turner 2016; see objectives.ppl).

    ``alpha=0`` is :func:`iwelbo`; ``alpha=1``, the limit, is the ELBO averaged over the
    ``K`` particles.

    >>> # obj = ppl.stdlib.renyi(m.model(N) | {"y": y}, m.guide(), K=8, alpha=0.5)
    """
    from ..compiler.diagnostics import DataError, Diagnostic

    K = _particles("renyi", K)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise DataError(Diagnostic(f"renyi(): alpha must be a finite number, got {alpha!r}",
                                   help="e.g. ppl.stdlib.renyi(p, q, K=8, alpha=0.5)"))
    return _objective("renyi", p, q, K=K, alpha=float(alpha))


def cubo(p, q, K: int, n: float = 2.0):
    """The χ upper bound CUBO_n with ``K`` particles, negated so it is maximised (Dieng et
    al. 2017; see objectives.ppl): ``−(1/n)·log((1/K) Σ_k w_k^n)``, ``n ≥ 1``.

    Maximising it tightens an upper bound on log p(x); it is ``renyi`` with α = 1 − n.

    >>> # obj = ppl.stdlib.cubo(m.model(N) | {"y": y}, m.guide(), K=8, n=2.0)
    """
    from ..compiler.diagnostics import DataError, Diagnostic

    K = _particles("cubo", K)
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not (math.isfinite(n) and n >= 1):
        raise DataError(Diagnostic(f"cubo(): n must be a number of at least 1 (CUBO_n bounds "
                                   f"log p(x) from above only then), got {n!r}",
                                   help="e.g. ppl.stdlib.cubo(p, q, K=8, n=2.0)"))
    return _objective("cubo", p, q, K=K, n=float(n))


def rws(p, q, K: int):
    """Reweighted wake-sleep's wake phases with ``K`` particles (Bornschein & Bengio 2015;
    see objectives.ppl): the model's gradient Σ_k w̃_k ∇log p(z_k, x), the family's
    Σ_k w̃_k ∇log q(z_k); the value is iwelbo's. Works for discrete and continuous
    families alike.

    >>> # obj = ppl.stdlib.rws(m.model(N) | {"y": y}, m.guide(), K=8)
    """
    K = _particles("rws", K)
    return _objective("rws", p, q, K=K)


def forward_kl(p, q, K: int):
    """The inclusive KL(p(z|x) ‖ q) through sampling-importance resampling from ``q`` with
    ``K`` particles (see objectives.ppl): value Σ_k w̃_k log q(z_k), gradient for the
    family's parameters only, Σ_k w̃_k ∇log q(z_k).

    >>> # obj = ppl.stdlib.forward_kl(m.model(N) | {"y": y}, m.guide(), K=16)
    """
    K = _particles("forward_kl", K)
    return _objective("forward_kl", p, q, K=K)


def _generative(name: str, what: str, g) -> None:
    from ..compiler.diagnostics import DataError, Diagnostic

    if not (hasattr(g, "module") and hasattr(g, "gen_value")):
        raise DataError(Diagnostic(
            f"{name}(): {what} must be a generative function of a loaded program, got "
            f"{type(g).__name__}", help=f"e.g. ppl.stdlib.{name}(m.family(), ...)"))


def _keep(name: str, keep) -> tuple:
    from ..compiler.diagnostics import DataError, Diagnostic

    keep = (keep,) if isinstance(keep, str) else keep
    if not (isinstance(keep, (list, tuple)) and keep and all(isinstance(k, str) for k in keep)):
        raise DataError(Diagnostic(f"{name}(): keep must list addresses (strings), got {keep!r}",
                                   help=f'e.g. ppl.stdlib.{name}(..., keep=["x", "y"])'))
    return tuple(keep)


def _count(name: str, what: str, n) -> int:
    import numbers

    from ..compiler.diagnostics import DataError, Diagnostic

    if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1):
        raise DataError(Diagnostic(f"{name}(): {what} must be an integer of at least 1, got {n!r}"))
    return int(n)


def marginal(q, keep, particles: int = 1, proposal=None, exact: bool = False):
    """``q`` over its ``keep`` addresses, its other choices (auxiliaries u) integrated out
    (see compiler/combinators.py).

    With ``particles=m`` inner particles from the proposal (``q`` itself with the kept
    choices held, or ``proposal=m.reverse``, a gen whose one argument is the kept trace),
    ``sim`` returns a reciprocal-unbiased estimate of log q(x) and ``density`` an unbiased
    one; ``exact=True`` sums finite-support auxiliaries out exactly.

    >>> # fam = ppl.stdlib.marginal(m.family(), keep=["x", "y"], particles=5)
    >>> # obj = ppl.stdlib.elbo(m.model() | {"z": 5.0}, fam)
    """
    _generative("marginal", "q", q)
    return q.module.marginal(q, _keep("marginal", keep), _count("marginal", "particles", particles),
                             proposal, bool(exact))


def normalize(p, q, particles: int):
    """Sampling-importance-resampling of the target ``p`` with proposal ``q`` and
    ``particles`` particles, as a family (see compiler/combinators.py):
    ``elbo(p, normalize(p, q, N))`` is IWAE's bound with N particles.

    >>> # obj = ppl.stdlib.elbo(target, ppl.stdlib.normalize(target, m.guide(), particles=10))
    """
    _generative("normalize", "p", p)
    _generative("normalize", "q", q)
    return q.module.normalize(p, q, _count("normalize", "particles", particles))


def hvi(p, q, keep):
    """Hierarchical VI: ``elbo(p, marginal(q, keep, particles=1))`` (see objectives.ppl).

    >>> # obj = ppl.stdlib.hvi(m.model() | {"z": 5.0}, m.family(), keep=["x", "y"])
    """
    return _objective("hvi", p, q, keep=_keep("hvi", keep))


def iwhvi(p, q, keep, m: int = 5):
    """Importance-weighted HVI: ``elbo(p, marginal(q, keep, particles=m))`` (see objectives.ppl)."""
    return _objective("iwhvi", p, q, keep=_keep("iwhvi", keep), m=_count("iwhvi", "m", m))


def diwhvi(p, q, keep, K: int = 5, m: int = 5):
    """Doubly importance-weighted HVI: ``iwelbo(p, marginal(q, keep, particles=m), K)``
    (see objectives.ppl)."""
    return _objective("diwhvi", p, q, keep=_keep("diwhvi", keep), K=_particles("diwhvi", K),
                      m=_count("diwhvi", "m", m))


def _auto(kind: str, p, init=None, **options):
    from ..compiler.diagnostics import DataError, Diagnostic
    from .initializers import check_strategy

    _generative(f"auto_{kind}", "p", p)
    family = p.module.auto(kind, p, **options)
    init = check_strategy(init, f"auto_{kind}")
    if init is not None:
        if kind == "iaf":
            raise DataError(Diagnostic(
                "auto_iaf(init=...): a flow has no location parameter to start at a value "
                "(its layers start near the identity on a standard normal)",
                help="use init= with auto_normal, auto_delta, auto_mvn or auto_lowrank"))
        family = family.with_init(init)
    return family


def auto_normal(p, init=None):
    """A mean-field normal family over the latent choices of the target ``p`` (NumPyro's
    AutoNormal; see compiler/auto.py): each latent drawn as normal(loc, scale) on the real
    line and mapped onto its support (exp for a halfnormal, a sigmoid for a beta).
    ``init`` starts the locations (the other automatic families' too, but for
    ``auto_iaf``): ``init_to_median()``, ``init_to_sample()``,
    ``init_to_value(values={...})`` or ``init_to_uniform()`` (NumPyro's
    ``init_loc_fn``); by default every loc starts at 0 on the unconstrained scale.

    >>> # target = m.model(x) | {"y": y}
    >>> # obj = ppl.stdlib.elbo(target, ppl.stdlib.auto_normal(target))
    >>> # q = ppl.stdlib.auto_normal(target, init=ppl.init_to_value(values={"mu": 1.0}))
    """
    return _auto("normal", p, init)


def auto_delta(p, init=None):
    """A point mass at a learned value of each latent of ``p`` (log q = 0): with ``elbo``,
    maximum a posteriori (NumPyro's AutoDelta)."""
    return _auto("delta", p, init)


def auto_mvn(p, init=None):
    """One multivariate normal, full covariance, over all of ``p``'s latents on the real
    line, each mapped onto its support (NumPyro's AutoMultivariateNormal)."""
    return _auto("mvn", p, init)


def auto_lowrank(p, rank: int, init=None):
    """As :func:`auto_mvn`, with covariance W Wᵀ + diag(d), W of ``rank`` columns
    (NumPyro's AutoLowRankMultivariateNormal)."""
    return _auto("lowrank", p, init, rank=_count("auto_lowrank", "rank", rank))


def auto_iaf(p, hidden=None, layers: int = 3, init=None):
    """A normalising flow over ``p``'s latents: ``layers`` inverse autoregressive layers
    (MADE networks with hidden widths ``hidden``, an int or a tuple; default two of the
    number of latent values) on a standard normal, each latent then mapped onto its
    support (NumPyro's AutoIAFNormal).

    >>> # obj = ppl.stdlib.elbo(target, ppl.stdlib.auto_iaf(target, hidden=16, layers=2))
    """
    options = {"layers": _count("auto_iaf", "layers", layers)}
    if hidden is not None:
        options["hidden"] = (_count("auto_iaf", "hidden", hidden) if not isinstance(hidden, (list, tuple))
                             else tuple(_count("auto_iaf", "hidden", h) for h in hidden))
    return _auto("iaf", p, init, **options)


# NumPyro's initialisation strategies (stdlib/initializers.py), for ppl.nuts(init=...) and
# the automatic families' init=; imported on first use (they need JAX).
_STRATEGIES = ("init_to_uniform", "init_to_sample", "init_to_median", "init_to_value")


def __getattr__(name: str):
    if name in _STRATEGIES:
        from . import initializers
        return getattr(initializers, name)
    raise AttributeError(f"module 'ppl.stdlib' has no attribute {name!r}")
