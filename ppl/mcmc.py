"""NUTS as a reference posterior: numpyro's sampler on a conditioned model's density.

``ppl.nuts(model | obs, num_samples, num_warmup, chains, key)`` runs
numpyro's No-U-Turn sampler on the target's log density in an
unconstrained space, and returns a :class:`NutsResult`: the draws as
stacked traces (by chain, and flattened for ``summarize`` and
``predictive``), the divergences, and per-address summaries with numpyro's
split r-hat and effective sample size. It is a gold standard to check a
variational fit against, in the same language.

How the unconstrained space is built: each latent choice (a ``sample`` of
the compiled model whose address is not observed) has its distribution's
support from the library's row (``build(form, args).support``, a numpyro
constraint) and numpyro's bijection ``biject_to(support)`` onto it. The
potential is ``-(log p(T(u), obs) + log |det J_T(u)|)``, with the log joint
evaluated by the model's own compiled ``density`` entry (the one
``target.density`` uses).

How it runs: numpyro's NUTS kernel (``numpyro.infer.hmc.hmc(algo="NUTS")``,
the kernel ``MCMC(NUTS(...))`` drives, with its step-size and diagonal
mass-matrix adaptation during warmup) in a ``lax.scan``, every chain's
start, warmup and draws in one jitted program. The program takes the model
parameters and the data as arguments and is cached on the module by the
density entry and the settings, so a second call with new data of the same
shapes compiles nothing (``MCMC`` would trace and compile each call anew,
and evaluate its initialisation operation by operation).

Invariants:

- a latent whose support depends on values known only at run time (a
  ``uniform`` with a traced bound), a point mass (``delta``) or a discrete
  latent is a :class:`~ppl.DataError` naming it, never a wrong answer;
- the draws are the constrained values the model sees, of the shapes its
  trace has, stacked ``[chains, draws, ...]`` in ``by_chain``;
- each chain starts at the first of up to ``INIT_TRIES`` points drawn
  uniformly in (-2, 2) on the unconstrained scale (Stan's default) where the
  log density and its gradient are finite, or, with ``init=``, at the point of
  that strategy (``init_to_value``, ``init_to_median``, ``init_to_sample``,
  ``init_to_uniform``: NumPyro's), which must be finite there.

    >>> # fit = ppl.nuts(m.eight_schools(sigma) | {"y": y}, num_samples=1000, chains=4,
    >>> #                key=jax.random.PRNGKey(0))
    >>> # fit.summary["mu"]["mean"], fit.summary["mu"]["r_hat"], fit.divergences.sum()
    >>> # fit.predictive(jax.random.PRNGKey(1))["y"].shape      (4000, 8)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as numpyro_dist
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc

from .compiler.diagnostics import DataError, Diagnostic
from .compiler.backend.standard import bind_for_impl
from .compiler.ir import Lit, call_prefix
from .compiler.passes.addresses import trace_type
from .entries import Inputs, check_key
from .combinators import Marginal, prior_draws
from .compiler.values import MarginalValue
from .module import GenerativeFunction, _count
from .result import summarize
from .stdlib.initializers import check_strategy
from .trace import Trace
from .jit import jit

# Starting points tried per chain before giving up on a non-finite log density.
INIT_TRIES = 20


@dataclass(frozen=True)
class LatentSite:
    """A latent choice as NUTS sees it: its address, shape, support and bijection."""

    address: str
    shape: tuple[int, ...]
    transform: Any  # numpyro's biject_to(support): unconstrained -> the support

    @property
    def unconstrained_shape(self) -> tuple[int, ...]:
        out = jax.eval_shape(self.transform.inv, jax.ShapeDtypeStruct(self.shape, jnp.float32))
        return tuple(out.shape)


def latent_sites(target: GenerativeFunction) -> list[LatentSite]:
    """The latent choices of a conditioned model (its unobserved ``sample`` s), sorted by
    address, each with the bijection onto its support; anything NUTS cannot sample
    is a :class:`DataError` at the choice."""
    lowerer = target.module.lowerer
    value, _ = target.lower_into(Inputs(target.module))
    # An exact marginal's latents are its kept choices (the others are summed out).
    gv = value.family if isinstance(value, MarginalValue) else value
    fn = lowerer.specialise(gv)
    shapes = dict(trace_type(fn, lowerer.functions).fields)
    kept = set(value.keep) if isinstance(value, MarginalValue) else set(shapes)
    constants: dict = {}
    eqns = dict(_samples(fn.body, lowerer.functions, target.module.library, constants))
    sites = []
    for address in sorted(kept - set(target.observations)):
        support = _support(target, address, eqns[address], constants)
        sites.append(LatentSite(address, tuple(shapes[address].shape), biject_to(support)))
    if not sites:
        raise DataError(Diagnostic(f"{target!r} has no latent choices: every address it draws "
                                   "is observed, so there is nothing to sample"))
    return sites


def _samples(region, functions: dict, library, constants: dict, prefix: str = ""):
    """``(address, sample equation)`` for every random choice, nested calls under their
    address; on the way, ``constants`` gets the value of every builtin call whose
    arguments are all literals or constants (``-1.0``, ``[1.0, 2.0]``)."""
    for e in region.eqns:
        if e.op == "fn" and all(isinstance(a, Lit) or a in constants for a in e.args):
            f = library.functions.get(e.attrs["name"])
            if f is not None:
                args = [a.value if isinstance(a, Lit) else constants[a] for a in e.args]
                constants[e.outs[0]] = f.impl(**bind_for_impl(f, e.attrs, args))
        elif e.op == "sample":
            yield prefix + e.attrs["address"], e
        elif e.op == "call":
            callee = e.regions[0] if e.regions else functions[e.attrs["callee"]].body
            yield from _samples(callee, functions, library, constants,
                                call_prefix(prefix, e.attrs["address"]))
        else:
            for r in e.regions:
                yield from _samples(r, functions, library, constants, prefix)


def _support(target: GenerativeFunction, address: str, eqn, constants: dict) -> Any:
    """The numpyro support of the choice ``eqn``, which must be continuous and known
    when the model is compiled (it may read literals and ``constants``, not traced values)."""
    name, form = eqn.attrs["dist"], eqn.attrs["form"]
    family = target.module.library.distributions[name]
    if family.discrete:
        raise DataError(Diagnostic(
            f"NUTS cannot sample the discrete latent '{address}' ({name}) of {target!r}", eqn.span,
            help="observe it, or sum it out of the model exactly: ppl.nuts(ppl.stdlib.marginal("
                 "model, keep=[...], exact=True) | obs); NUTS moves continuous latents only"))
    args = eqn.args[:len(form)]
    literals = {i: a.value if isinstance(a, Lit) else constants[a] for i, a in enumerate(args)
                if isinstance(a, Lit) or a in constants}
    traced = [jax.ShapeDtypeStruct(a.type.shape, a.type.dtype) for i, a in enumerate(args)
              if i not in literals]
    found = {}

    def build(*values):
        it = iter(values)
        bound = [literals[i] if i in literals else next(it) for i in range(len(args))]
        with jax.ensure_compile_time_eval():  # what reads only literals stays concrete
            d = family.build(form, bound)
        found["point mass"] = isinstance(d, numpyro_dist.Delta)
        found["support"] = d.support

    jax.eval_shape(build, *traced)
    if found["point mass"]:
        raise DataError(Diagnostic(f"NUTS cannot sample '{address}' of {target!r}: {name} is a "
                                   "point mass, with no density to move along", eqn.span,
                                   help="use its value directly instead of drawing it"))
    support = found["support"]
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(support)):
        raise DataError(Diagnostic(
            f"the support of '{address}' ({name}) in {target!r} depends on values known only when "
            "the model runs, so NUTS cannot map it to an unconstrained space", eqn.span,
            help="give its bounds as numbers in the program, or reparameterise (draw a "
                 "uniform(0, 1) and scale it)"))
    return support


class Density:
    """The log density of a conditioned model on the unconstrained space of its latents,
    ``log p(T(u), obs) + log |det J_T(u)|``, through the model's compiled density entry.

    ``log_density(params, data, u)`` takes the model's parameters and the entry's other
    inputs (the observations and arguments, ``self.data``) as arguments, so that one
    compiled sampler serves every data set of the same shapes.
    """

    def __init__(self, target: GenerativeFunction, params):
        self.target = target
        self.sites = latent_sites(target)
        inputs = Inputs(target.module)
        zeros = {s.address: jnp.zeros(s.shape, jnp.float32) for s in self.sites}
        tvar = inputs.add_trace(Trace(zeros))
        gv, sig = target.lower_into(inputs)
        self.entry = target.module.entries.get(
            "density", target.name, (("trace", tvar.type), sig), inputs,
            lambda low, b: ([low.emit_density(gv, tvar, b, None)], None))
        self.params = self.entry.params(params)
        self.data = list(inputs.arrays[1:])

    def constrain(self, unconstrained: dict) -> dict:
        return {s.address: s.transform(unconstrained[s.address]) for s in self.sites}

    def log_density(self, params: dict, data: list, unconstrained: dict):
        values = self.constrain(unconstrained)
        log_det = sum(jnp.sum(s.transform.log_abs_det_jacobian(unconstrained[s.address],
                                                                values[s.address]))
                      for s in self.sites)
        (logp,) = self.entry.run(params, jax.random.PRNGKey(0), [(values, ())] + data)
        return logp + log_det

    def initial_point(self, key, params: dict, data: list):
        """The first of ``INIT_TRIES`` uniform(-2, 2) points where the log density and its
        gradient are finite, and whether there was one."""
        keys = jax.random.split(key, len(self.sites))
        points = {s.address: jax.random.uniform(k, (INIT_TRIES,) + s.unconstrained_shape,
                                                jnp.float32, -2.0, 2.0)
                  for s, k in zip(self.sites, keys)}
        logp, grads = jax.vmap(jax.value_and_grad(
            lambda u: self.log_density(params, data, u)))(points)
        finite = jnp.isfinite(logp)
        for g in jax.tree_util.tree_leaves(grads):
            finite &= jnp.all(jnp.isfinite(g.reshape(INIT_TRIES, -1)), axis=1)
        first = jnp.argmax(finite)
        return {a: v[first] for a, v in points.items()}, jnp.any(finite)

    def finite_at(self, point: dict, params: dict, data: list):
        """Whether the log density and its gradient are finite at ``point``."""
        logp, grads = jax.value_and_grad(lambda u: self.log_density(params, data, u))(point)
        finite = jnp.isfinite(logp)
        for g in jax.tree_util.tree_leaves(grads):
            finite &= jnp.all(jnp.isfinite(g))
        return finite

    def starts(self, init, keys, params: dict) -> dict:
        """Each chain's first point by the strategy ``init``, stacked ``[chains, ...]``."""
        prior = prior_draws(self.target, params) if init.needs_prior else None
        points = [init.unconstrained(k, self.sites, prior) for k in keys]
        return {s.address: jnp.stack([p[s.address] for p in points]) for s in self.sites}


@dataclass(frozen=True)
class Settings:
    """What fixes a compiled sampler besides the density entry (part of its cache key)."""

    chains: int
    num_samples: int
    num_warmup: int
    chain_method: str
    target_accept_prob: float
    max_tree_depth: int
    given_start: bool = False  # each chain's first point is an argument (an init strategy's)


def sampler(density: Density, settings: Settings):
    """``run(keys, params, data[, starts]) -> (draws, diverging, potential_energy, (started,
    first points))``: every
    chain's start, warmup and draws as one jitted program (numpyro's NUTS kernel in a
    ``lax.scan``), cached on the module by the density entry and the settings."""
    runners = density.target.module.entries.runners
    cache_key = ("nuts", density.entry.key, settings)
    if cache_key in runners:
        return runners[cache_key]
    init_kernel, sample_kernel = hmc(
        potential_fn_gen=lambda params, data: lambda u: -density.log_density(params, data, u),
        algo="NUTS")
    warmup, total = settings.num_warmup, settings.num_warmup + settings.num_samples

    def chain(key, params, data, start=None):
        start_key, run_key = jax.random.split(key)
        if start is None:
            start, started = density.initial_point(start_key, params, data)
        else:
            started = density.finite_at(start, params, data)
        state = init_kernel(start, warmup, target_accept_prob=settings.target_accept_prob,
                            max_tree_depth=settings.max_tree_depth, model_args=(params, data),
                            rng_key=run_key)

        def kept(state):
            return state.z, state.diverging, state.potential_energy

        def step(carry, i):
            # Step i's draw goes to row i - warmup; warmup steps write row 0, which the
            # first kept draw overwrites (numpyro's fori_collect): memory for the kept only.
            state, rows = carry
            state = sample_kernel(state, model_args=(params, data))
            row = jnp.maximum(i - warmup, 0)
            rows = jax.tree_util.tree_map(
                lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, row, 0),
                rows, kept(state))
            return (state, rows), None

        rows = jax.tree_util.tree_map(
            lambda x: jnp.zeros((settings.num_samples,) + jnp.shape(x), jnp.result_type(x)),
            kept(state))
        (_, (z, diverging, energy)), _ = jax.lax.scan(step, (state, rows), jnp.arange(total))
        return jax.vmap(density.constrain)(z), diverging, energy, (started,
                                                                   density.constrain(start))

    if settings.given_start:
        if settings.chain_method == "vectorized":
            run = jit(jax.vmap(chain, in_axes=(0, None, None, 0)))
        else:
            run = jit(lambda keys, params, data, starts: jax.lax.map(
                lambda ks: chain(ks[0], params, data, ks[1]), (keys, starts)))
    elif settings.chain_method == "vectorized":
        run = jit(jax.vmap(chain, in_axes=(0, None, None)))
    else:
        run = jit(lambda keys, params, data: jax.lax.map(
            lambda k: chain(k, params, data), keys))
    runners[cache_key] = run
    return run


def nuts(target: GenerativeFunction, num_samples: int = 1000, num_warmup: int = 1000,
         chains: int = 4, key=None, params=None, chain_method: str = "vectorized",
         target_accept_prob: float = 0.8, max_tree_depth: int = 10,
         init=None) -> "NutsResult":
    """Run numpyro's NUTS on a conditioned model and return its draws.

    ``params`` gives the model's parameters (unconstrained, as ``init`` or a fit
    returns them; a :class:`~ppl.FitResult` is taken for its ``params``);
    without them a model with parameters starts from its ``init``.
    ``chain_method``: ``"vectorized"`` (the chains in lockstep, one program)
    or ``"sequential"`` (one after another, in one program). The sampler is
    compiled once per model signature and settings: a second call with new
    data of the same shapes compiles nothing. ``init`` picks each chain's first
    point: ``init_to_value(values={...})``, ``init_to_median()``,
    ``init_to_sample()`` or ``init_to_uniform(radius)`` (NumPyro's strategies; by
    default up to ``INIT_TRIES`` uniform(-2, 2) points until one is finite).
    """
    init = check_strategy(init, "ppl.nuts")
    if isinstance(target, Marginal) and not target.exact:
        raise DataError(Diagnostic(
            "ppl.nuts needs an exact log density, but an importance-sampled marginal's is an "
            "estimate", help="sum the other choices out exactly: marginal(..., exact=True)"))
    if not isinstance(target, (GenerativeFunction, Marginal)):
        raise DataError(Diagnostic(f"ppl.nuts needs a conditioned model, like model | "
                                   f"{{\"y\": data}}, got {type(target).__name__}"))
    if not target.observations:
        raise DataError(Diagnostic(f"ppl.nuts needs a conditioned model, but {target!r} observes "
                                   "nothing", help="condition it on data: model | {\"y\": data}"))
    num_samples, chains = _count(num_samples, "num_samples"), _count(chains, "chains")
    if (isinstance(num_warmup, (bool, np.bool_)) or not isinstance(num_warmup, (int, np.integer))
            or num_warmup < 0):
        raise DataError(Diagnostic(f"num_warmup must be a non-negative integer, got "
                                   f"{num_warmup!r}"))
    if chain_method not in ("vectorized", "sequential"):
        raise DataError(Diagnostic(f"chain_method must be 'vectorized' or 'sequential', got "
                                   f"{chain_method!r}"))
    key = check_key(jax.random.PRNGKey(0) if key is None else key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    chain_key, params_key = jax.random.split(key)
    params = getattr(params, "params", params)
    start = time.perf_counter()
    density = Density(target, _model_params(target, params, params_key))
    settings = Settings(chains, num_samples, int(num_warmup), chain_method,
                        float(target_accept_prob), int(max_tree_depth), init is not None)
    run = sampler(density, settings)
    chain_keys = jax.random.split(chain_key, chains)
    if init is None:
        draws, diverging, energy, (started, first) = run(chain_keys, density.params,
                                                         density.data)
    else:
        init_keys = jax.random.split(jax.random.fold_in(chain_key, 1), chains)
        starts = density.starts(init, init_keys, density.params)
        draws, diverging, energy, (started, first) = run(chain_keys, density.params,
                                                         density.data, starts)
        if not np.all(started):
            bad = int(np.argmin(np.asarray(started)))
            raise DataError(Diagnostic(
                f"the log density of {target!r} (or its gradient) is not finite at the first "
                f"point {init!r} gives chain {bad}", help="start inside the posterior's "
                "support (an initial value where an observation has density 0 is -inf)"))
    if not np.all(started):
        raise DataError(Diagnostic(
            f"the log density of {target!r} (or its gradient) is not finite at any of "
            f"{INIT_TRIES} starting points drawn uniformly in (-2, 2) on the unconstrained "
            "scale", help="check the data against the model (an observation outside its "
                          "distribution's support has log density -inf)"))
    by_chain = Trace({a: np.asarray(v) for a, v in draws.items()})
    initial = Trace({a: np.asarray(v) for a, v in first.items()})
    return NutsResult(target, density.params, by_chain, np.asarray(diverging),
                      np.asarray(energy), int(num_warmup), time.perf_counter() - start, initial)


def _model_params(target: GenerativeFunction, params, key) -> dict | None:
    """The given parameters, or the model's initial ones if it has any and none were given."""
    if params is not None:
        return params
    initial = target.init(key)
    return initial or None


@dataclass
class NutsResult:
    """The draws of :func:`nuts`: stacked traces and the sampler's diagnostics.

    ``by_chain``: a Trace of values ``[chains, draws, ...]``; ``samples``: the
    same flattened to ``[chains * draws, ...]`` (for ``ppl.summarize`` and
    ``model.predictive``); ``divergences``: bool ``[chains, draws]``;
    ``potential_energy``: minus the unconstrained log density of each draw;
    ``params``: the model parameters it sampled under; ``initial``: each chain's
    first point (constrained, ``[chains, ...]``), before warmup.
    """

    target: GenerativeFunction
    params: dict
    by_chain: Trace
    divergences: np.ndarray
    potential_energy: np.ndarray
    num_warmup: int
    seconds: float
    initial: Trace | None = None

    @property
    def chains(self) -> int:
        return int(self.divergences.shape[0])

    @property
    def draws(self) -> int:
        return int(self.divergences.shape[1])

    @property
    def samples(self) -> Trace:
        n = self.chains * self.draws
        return Trace({a: v.reshape((n,) + v.shape[2:]) for a, v in self.by_chain.items()})

    def __repr__(self) -> str:
        return (f"NutsResult({self.target!r}: {self.chains} chains of {self.draws} draws after "
                f"{self.num_warmup} warmup, {int(self.divergences.sum())} divergences, "
                f"{self.seconds:.2f} s)")

    def summarize(self, quantiles=(0.05, 0.5, 0.95)) -> dict[str, dict[str, np.ndarray]]:
        """Per address: mean, sd and quantiles of the pooled draws (``ppl.summarize``), and
        numpyro's split r-hat and effective sample size over the chains (NaN with fewer
        than 4 draws per chain, too few to split)."""
        out = summarize(self.samples, quantiles)
        for address, v in self.by_chain.items():
            v = np.asarray(v, np.float64)
            enough = self.draws >= 4
            nan = np.full(v.shape[2:], np.nan)
            out[address]["r_hat"] = split_gelman_rubin(v) if enough else nan
            out[address]["ess"] = effective_sample_size(v) if enough else nan
        return out

    @property
    def summary(self) -> dict[str, dict[str, np.ndarray]]:
        return self.summarize()

    def predictive(self, key, model: GenerativeFunction | None = None) -> Trace:
        """Posterior predictive draws: ``model`` (the unconditioned target by default) run with
        each draw's latents fixed, as ``model.predictive(key, self.samples, self.params)``."""
        model = self.target._unconditioned() if model is None else model
        return model.predictive(key, self.samples, self.params)


__all__ = ["nuts", "NutsResult", "latent_sites", "LatentSite", "Density", "Settings", "sampler"]
