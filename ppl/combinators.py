"""``marginal``, ``normalize`` and the automatic families from Python: generative
functions made from others.

``ppl.stdlib.marginal(q, keep=["z"], particles=5)`` and
``ppl.stdlib.normalize(p, q, particles=10)`` and ``ppl.stdlib.auto_normal(p)``
(``auto_delta``, ``auto_mvn``, ``auto_lowrank``) build these objects; they go
wherever a generative function goes (``ppl.stdlib.elbo(p, marginal(...))``,
any objective of the program), and the compiler lowers them
(compiler/combinators.py). They can also be simulated directly.

    >>> # fam = ppl.stdlib.marginal(m.family(), keep=["x", "y"], particles=5)
    >>> # obj = ppl.stdlib.elbo(m.model() | {"z": 5.0}, fam)
"""

from __future__ import annotations

from typing import Any

from .compiler.diagnostics import DataError, Diagnostic
from .entries import GenerativeArgument, Inputs, check_key, merge_observations
from .trace import Trace


def _is_generative(x) -> bool:
    return isinstance(x, GenerativeArgument) and hasattr(x, "module")


class Combinator(GenerativeArgument):
    """What ``marginal`` and ``normalize`` objects share: the program they come from,
    conditioning with ``|`` (marginal), and ``simulate``."""

    module: Any
    observations: dict

    def _check(self) -> None:
        """Lower it once when it is made, so that a mistake in its arguments (a ``keep``
        naming no choice, ``particles=0``) is reported by the line that made it, not at
        its first use."""
        self.lower_into(Inputs(self.module))

    def gen_value(self, inputs: Inputs):
        return self.lower_into(inputs)[0]

    def simulate(self, key, params: dict | None = None) -> tuple[Trace, Any]:
        """Run forward: a trace of the kept (or resampled) choices and its log-density
        estimate (reciprocal-unbiased for ``marginal``)."""
        inputs = Inputs(self.module)
        value, sig = self.lower_into(inputs)
        if getattr(value, "observations", ()):
            raise DataError(Diagnostic(f"cannot simulate {self!r}: it is conditioned on "
                                       "observations"))
        entry = self.module.entries.get("simulate", self.name, sig, inputs,
                                        lambda low, b: (list(low.emit_sim(value, b, None)), None))
        (values, retval), logp = entry(params, check_key(key), inputs.arrays)
        return Trace(values), logp

    def density(self, trace: Trace | dict, params: dict | None = None, key=None):
        """The log density of a trace of the kept choices (with the observations, if
        conditioned): exact for ``marginal(..., exact=True)``, else an estimate drawn with
        ``key``."""
        if not isinstance(trace, Trace):
            if not isinstance(trace, dict):
                raise DataError(Diagnostic(f"density() needs a Trace or a dict of values by "
                                           f"address, got {type(trace).__name__}"))
            trace = Trace(trace)
        if key is None and not getattr(self, "exact", False):
            raise DataError(Diagnostic(f"the density of {self!r} is an estimate: pass a key, "
                                       "density(trace, params, key=...)"))
        inputs = Inputs(self.module)
        tvar = inputs.add_trace(trace)
        value, sig = self.lower_into(inputs)
        entry = self.module.entries.get(
            "density", self.name, (("trace", tvar.type), sig), inputs,
            lambda low, b: ([low.emit_density(value, tvar, b, None)], None))
        return entry(params, None if key is None else check_key(key), inputs.arrays)[0]

    def init(self, key) -> dict[str, Any]:
        inputs = Inputs(self.module)
        value, sig = self.lower_into(inputs)
        entry = self.module.entries.get("simulate", self.name, sig, inputs,
                                        lambda low, b: (list(low.emit_sim(value, b, None)), None))
        return entry.init(check_key(key))


class Marginal(Combinator):
    """``marginal(q, keep=[…], particles=m, proposal=r, exact=False)`` (see ppl.stdlib.marginal)."""

    name = "marginal"

    def __init__(self, family, keep, particles: int = 1, proposal=None, exact: bool = False,
                 observations: dict | None = None):
        if not _is_generative(family):
            raise DataError(Diagnostic(f"marginal(q, ...): q must be a generative function of a "
                                       f"loaded program, got {type(family).__name__}"))
        self.family = family
        self.module = family.module
        self.keep = (keep,) if isinstance(keep, str) else tuple(keep) if isinstance(
            keep, (list, tuple)) else keep
        self.particles = particles
        self.proposal = _proposal_name(proposal, self.module)
        self.exact = exact
        self.observations = dict(observations or {})
        self._check()

    def __repr__(self) -> str:
        obs = f" | {{{', '.join(self.observations)}}}" if self.observations else ""
        how = "exact=True" if self.exact else f"particles={self.particles}"
        return f"marginal({self.family!r}, keep={list(self.keep)}, {how})" + obs

    def __or__(self, observations: dict) -> "Marginal":
        both = merge_observations(self.observations, observations)
        return Marginal(self.family, self.keep, self.particles, self.proposal, self.exact, both)

    def lower_into(self, inputs: Inputs):
        q, q_sig = inputs.value(self.family, "family")
        low = self.module.lowerer
        values = {"keep": self.keep, "particles": self.particles, "exact": self.exact}
        if self.proposal is not None:
            values["proposal"] = low.name_value(self.proposal)
        value = low.marginal_value(q, values, None, {})
        obs_sig = []
        if self.observations:
            obs = {a: inputs.add(self.observations[a], a) for a in sorted(self.observations)}
            value = low.condition_combinator(value, obs, None)
            obs_sig = [(a, v.type) for a, v in obs.items()]
        sig = ("marginal", q_sig, value.keep, value.particles, value.proposal, value.exact,
               tuple(obs_sig))
        return value, sig


class Normalize(Combinator):
    """``normalize(p, q, particles=N)`` (see ppl.stdlib.normalize)."""

    name = "normalize"

    def __init__(self, target, family, particles: int):
        for what, g in (("p", target), ("q", family)):
            if not _is_generative(g):
                raise DataError(Diagnostic(f"normalize(p, q, ...): {what} must be a generative "
                                           f"function of a loaded program, got {type(g).__name__}"))
        if target.module is not family.module:
            raise DataError(Diagnostic("normalize(p, q, ...): p and q come from different programs"))
        self.target, self.family, self.particles = target, family, particles
        self.module = family.module
        self.observations = {}
        self._check()

    def __repr__(self) -> str:
        return f"normalize({self.target!r}, {self.family!r}, particles={self.particles})"

    def lower_into(self, inputs: Inputs):
        p, p_sig = inputs.value(self.target, "target")
        q, q_sig = inputs.value(self.family, "family")
        value = self.module.lowerer.normalize_value(p, q, self.particles, None, {})
        return value, ("normalize", p_sig, q_sig, value.particles)


class Auto(Combinator):
    """``auto_normal(target)`` and the other automatic families (see ppl.stdlib.auto_normal):
    a family over the target's latent choices, with its own parameters."""

    def __init__(self, kind: str, target, **options):
        if not _is_generative(target):
            raise DataError(Diagnostic(f"auto_{kind}(p): p must be a generative function of a "
                                       f"loaded program, got {type(target).__name__}"))
        self.kind, self.target, self.options = kind, target, dict(options)
        self.name = f"auto_{kind}"
        self.module = target.module
        self.observations = {}
        self.init_strategy = None  # where its locations start (init_to_median(), ...)

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        if self.init_strategy is not None:
            opts += f", init={self.init_strategy!r}"
        return f"auto_{self.kind}({self.target!r}{opts})"

    def with_init(self, strategy) -> "Auto":
        """The same family with its locations started by ``strategy`` (the program, and so
        the compiled entries, are the same: only the initial parameters differ)."""
        out = Auto(self.kind, self.target, **self.options)
        out.init_strategy = strategy
        return out

    def init(self, key) -> dict[str, Any]:
        return self.initial_params(key, super().init(key))

    def initial_params(self, key, params: dict) -> dict:
        """``params`` with this family's locations set by its init strategy (unconstrained:
        each latent's value through the bijection onto its support), if it has one.

        ``auto_normal`` and ``auto_delta`` hold one ``<address>.loc`` per latent,
        ``auto_mvn`` and ``auto_lowrank`` one ``loc`` of all of them, flattened and
        joined in address order (compiler/auto.py)."""
        if self.init_strategy is None:
            return params
        import jax
        import jax.numpy as jnp

        from .mcmc import latent_sites

        if getattr(self, "_init_plan", None) is None:  # the target's sites, read once
            self._init_plan = (latent_sites(self.target),
                               self.lower_into(Inputs(self.module))[0].target.decl)
        sites, decl = self._init_plan
        strategy = self.init_strategy
        prior = None
        if strategy.needs_prior:
            prior = prior_draws(self.target, params)
        u = strategy.unconstrained(jax.random.fold_in(check_key(key), 0x1A17), sites, prior)
        out = dict(params)
        prefix = f"auto_{self.kind}.{decl}."
        if self.kind in ("normal", "delta"):
            for s in sites:
                path = prefix + f"{s.address}.loc"
                if path in out:  # (an objective may not read every location)
                    out[path] = jnp.asarray(u[s.address], jnp.float32).reshape(
                        jnp.shape(params[path]))
        elif prefix + "loc" in out:
            flat = jnp.concatenate([jnp.reshape(u[s.address], (-1,)) for s in sites])
            out[prefix + "loc"] = flat.astype(jnp.float32)
        return out

    def lower_into(self, inputs: Inputs):
        p, p_sig = inputs.value(self.target, "target")
        value = self.module.lowerer.auto_value(self.name, p, self.options, None)
        return value, ("auto", self.kind, p_sig, value.options)


def _proposal_name(proposal, module) -> str | None:
    """A proposal given from Python: a gen declaration of the program (``m.reverse``) or its name."""
    if proposal is None:
        return None
    name = proposal if isinstance(proposal, str) else getattr(proposal, "declaration", None)
    decl = module.lowerer.decls.get(name) if isinstance(name, str) else None
    if decl is None or decl.kind != "gen":
        raise DataError(Diagnostic("marginal(): proposal must be a generative function "
                                   "declaration of the same program (m.reverse, uncalled) or its "
                                   f"name, got {proposal!r}"))
    return name


def initial_params(objective, params: dict, key) -> dict:
    """``params`` with the locations of every automatic family among ``objective``'s
    arguments that was given an ``init=`` strategy started by it (``fit`` and
    ``Objective.init`` start there)."""
    for arg in list(getattr(objective, "args", ())) + list(getattr(objective, "kwargs", {}).values()):
        if isinstance(arg, Auto) and arg.init_strategy is not None:
            params = arg.initial_params(key, params)
    return params


def prior_draws(target, params):
    """``draws(key, n)``: ``n`` joint draws of ``target`` 's model without its observations,
    constrained, by address (what ``init_to_sample`` and ``init_to_median`` read). A marginal
    target's kept latents are drawn by the model it marginalises (the same law)."""
    base = target.family if isinstance(target, Marginal) else target
    if not hasattr(base, "_unconditioned"):
        raise DataError(Diagnostic(
            f"init_to_sample and init_to_median draw from the prior of a model, and {target!r} "
            "is not one", help="start it with init_to_value(values={...}) or init_to_uniform()"))
    model = base._unconditioned()
    return lambda key, n: model.sample(key, params, n=n)
