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

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"auto_{self.kind}({self.target!r}{opts})"

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
