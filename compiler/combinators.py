"""``marginal`` and ``normalize``: generative functions made from others.

Both are lowered here, in the lowering, into the ops every generative function
already uses (``sim``, ``density``, ``generate``, ``plate``, ``make_trace`` and
library functions), so every inner draw is an ordinary random choice with its
own gradient estimator, and ``ppl ir --after lower`` shows what they become.

``marginal(q, keep=["x"], particles=m)`` (default proposal: ``q`` itself,
run with the kept choices held; its importance weight is then the density of
the kept choices alone, Gen's ``generate`` weight):

- ``sim``: ``(t₁, _) = sim(q)``; ``x`` = the kept part of ``t₁``; particles
  ``u₂ … u_m`` from the proposal; returns ``(x, log ŵ)``, ``ŵ = (1/m) Σ_k
  q(u_k, x) / r(u_k | x)`` (the retained ``u₁`` is weighted too), so
  ``E[1/ŵ | x] = 1/q(x)``: reciprocal-unbiased;
- ``density(marginal(…), x)``: ``u₁ … u_m`` fresh from the proposal; returns
  ``log d̂`` with ``E[d̂] = q(x)``: unbiased.

With ``proposal=r`` (a gen whose one argument is the kept trace and which
draws exactly the other addresses), each weight is ``q(u, x) / r(u | x)``.

``normalize(p, q, particles=N)`` is sampling-importance-resampling of the
unnormalised ``p`` with proposal ``q``: ``sim`` draws ``z₁ … z_N ~ q``,
resamples ``j`` with probability ∝ ``w_j = p(z_j) / q(z_j)`` (a categorical
choice, with the library's estimator for it) and returns ``(z_j, log p(z_j) −
log Ẑ)``, ``Ẑ = (1/N) Σ w``; ``density(normalize(…), x)`` is conditional SIR
(``x`` retained as particle 1). Then ``elbo(p, normalize(p, q, N))`` is
IWAE's bound with N particles.

The automatic families, ``auto_normal(p)`` and the others, are rows here too;
compiler/auto.py lowers them.

    >>> sorted(COMBINATORS)[:2], sorted(COMBINATORS)[-2:]
    (['auto_delta', 'auto_iaf'], ['marginal', 'normalize'])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from . import ast
from .builder import Builder
from .diagnostics import Note, did_you_mean, error
from .ir import Lit, Program, Region, Var
from .types import INT, REAL, ArrayType, TraceType, tree_leaves
from .auto import AUTO_KINDS, AutoLowering
from .values import (AutoValue, GenValue, MarginalValue, NormalizeValue, Ref, describe,
                     is_generative)

# The address of normalize's resampling choice: not one a program can write (no '#'
# in names), so it never meets a user's; estimator patterns from Python may name it.
RESAMPLE_ADDRESS = "normalize#index"


@dataclass(frozen=True)
class Combinator:
    """A combinator's call signature: positional generative functions, then keywords
    with their defaults (``REQUIRED``: must be given)."""

    positional: tuple[str, ...]
    keywords: dict

    def usage(self, name: str) -> str:
        kws = ", ".join(k if v is REQUIRED else f"{k}={_spell(v)}" for k, v in self.keywords.items())
        return f"{name}({', '.join(self.positional)}, {kws})"


REQUIRED = object()


def _spell(v) -> str:
    return "none" if v is None else str(v).lower() if isinstance(v, bool) else repr(v)


COMBINATORS: dict[str, Combinator] = {
    "marginal": Combinator(("q",), {"keep": REQUIRED, "particles": 1, "proposal": None,
                                    "exact": False}),
    "normalize": Combinator(("p", "q"), {"particles": REQUIRED}),
    "auto_normal": Combinator(("p",), {}),
    "auto_delta": Combinator(("p",), {}),
    "auto_mvn": Combinator(("p",), {}),
    "auto_lowrank": Combinator(("p",), {"rank": REQUIRED}),
    "auto_iaf": Combinator(("p",), {"hidden": None, "layers": 3}),
}


def combinator_arity_problem(name: str, n_args: int, keywords: list[str]) -> str | None:
    """What is wrong with a call's shape (for the checker): None when fine."""
    c = COMBINATORS[name]
    if n_args != len(c.positional):
        return (f"{name}() takes {len(c.positional)} positional argument"
                f"{'s' if len(c.positional) > 1 else ''} ({', '.join(c.positional)}), "
                f"got {n_args}; use {c.usage(name)}")
    for k in keywords:
        if k not in c.keywords:
            return f"{name}() has no argument '{k}'; use {c.usage(name)}"
    missing = [k for k, v in c.keywords.items() if v is REQUIRED and k not in keywords]
    if missing:
        return f"{name}() needs {missing[0]}=...; use {c.usage(name)}"
    return None


class CombinatorLowering(AutoLowering):
    """Mixed into the lowering: building ``marginal``/``normalize`` values from a call,
    and lowering their ``sim`` and ``density`` (the automatic families': auto.py)."""

    # ---------------------------------------------------------------- values

    def combinator(self, name: str, e: ast.Call, env: dict, b: Builder) -> Any:
        """The value of a ``marginal(…)`` or ``normalize(…)`` call in the source."""
        problem = combinator_arity_problem(name, len(e.args), [k.name for k in e.kwargs])
        if problem:
            raise error(problem, e.span)
        c = COMBINATORS[name]
        gens = []
        for node, what in zip(e.args, c.positional):
            v = self.expr(node, env, b)
            if not is_generative(v):
                raise error(f"{name}(): {what} must be a generative function, got {describe(v)}",
                            node.span)
            gens.append(v)
        given = {k.name: k for k in e.kwargs}
        spans = {k: kw.value.span for k, kw in given.items()}
        values = {k: self.expr(kw.value, env, b) for k, kw in given.items()}
        if name in AUTO_KINDS:
            return self.auto_value(name, gens[0], values, e.span, e.args[0].span)
        if name == "normalize":
            return self.normalize_value(*gens, values["particles"], e.span, spans,
                                        [a.span for a in e.args])
        return self.marginal_value(gens[0], values, e.span, spans, e.args[0].span)

    def normalize_value(self, p, q, particles, span, spans: dict, arg_spans=(None, None)):
        if getattr(q, "observations", ()):
            raise error("normalize(p, q, ...): q is the proposal, which is simulated, so it "
                        "must not be conditioned", arg_spans[1] or span)
        n = self._count("normalize", "particles", particles, spans.get("particles", span))
        return NormalizeValue(p, q, n, span)

    def marginal_value(self, q, values: dict, span, spans: dict, q_span=None) -> MarginalValue:
        """``marginal(q, **values)``, checked (``spans``: where each keyword was given)."""
        if not isinstance(q, GenValue):
            raise error("marginal(q, ...): q must be a generative function declared with 'gen' "
                        f"(got {describe(q)})", q_span or span)
        if q.observations:
            raise error("marginal(q, ...): q must not be conditioned; condition the marginal "
                        "instead, as marginal(q, keep=[...]) | {x: data}", q_span or span)
        keep = values["keep"]
        if isinstance(keep, str):
            keep = (keep,)
        if not (isinstance(keep, (tuple, list)) and keep and all(isinstance(k, str) for k in keep)):
            raise error("keep= lists the addresses to keep, as strings: keep=[\"x\", \"y\"]",
                        spans.get("keep", span))
        particles = self._count("marginal", "particles", values.get("particles", 1),
                                spans.get("particles", span))
        exact = values.get("exact", False)
        if isinstance(exact, Lit):
            exact = exact.value
        if not isinstance(exact, bool):
            raise error(f"marginal(): exact must be true or false, got {describe(exact)}",
                        spans.get("exact", span))
        proposal = values.get("proposal")
        if proposal is not None:
            if not (isinstance(proposal, Ref) and proposal.kind == "gen"):
                raise error("marginal(): proposal must name a generative function (uncalled), "
                            "whose one argument is the trace of the kept choices, as "
                            "proposal=reverse with gen reverse(t) { u ~ ... t[\"x\"] ... }, got "
                            f"{describe(proposal)}", spans.get("proposal", span))
            if exact:
                raise error("marginal(): exact=true sums the other choices out; it takes no "
                            "proposal", spans.get("proposal", span))
            proposal = proposal.name
        value = MarginalValue(q, self._kept_addresses(q, tuple(keep), spans.get("keep", span)),
                              particles, proposal, exact, (), span)
        if proposal is not None:
            self._check_proposal(value, spans.get("proposal", span))
        return value

    def name_value(self, name: str) -> Ref:
        """The uncalled generative function ``name`` (a proposal given from Python)."""
        return Ref("gen", name)

    def _count(self, name: str, what: str, v, span) -> int:
        if isinstance(v, Lit):
            v = v.value
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            got = repr(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else describe(v)
            raise error(f"{name}(): {what} must be a static int of at least 1, got {got}", span,
                        help="the number of particles is part of the program's structure")
        return v

    def _kept_addresses(self, q: GenValue, keep: tuple[str, ...], span) -> tuple[str, ...]:
        """The full addresses kept: each named address, or every address under a prefix."""
        drawn = self.trace_fields(q, span)
        out: set[str] = set()
        for k in keep:
            matched = [a for a in drawn if a == k or a.startswith(k + "/")]
            if not matched:
                raise error(f"marginal(): keep names '{k}', but {q.decl} draws no choice there",
                            span, help=did_you_mean(k, drawn)
                            or f"its addresses: {', '.join(drawn) or 'none'}")
            out.update(matched)
        if out == set(drawn):
            raise error(f"marginal(): keep names every address {q.decl} draws, so there is "
                        "nothing to integrate out", span,
                        help="use the generative function itself, or keep fewer addresses")
        return tuple(sorted(out))

    def _check_proposal(self, m: MarginalValue, span) -> None:
        decl = self.decls[m.proposal]
        if len(decl.args) != 1:
            raise error(f"marginal(): the proposal {m.proposal} must take one argument, the "
                        f"trace of the kept choices; it takes {len(decl.args)}", span)
        kept_type = TraceType(tuple((a, t) for a, t in self.trace_fields(m.family, span).items()
                                    if a in m.keep))
        probe = self.proposal_value(m, Var(kept_type, "kept"), span)
        want = sorted(self.auxiliary(m, span))
        drawn = sorted(self.trace_fields(probe, span))
        if drawn != want:
            extra = sorted(set(drawn) - set(want))
            lacking = sorted(set(want) - set(drawn))
            what = (f"draws {', '.join(repr(a) for a in extra)}, which "
                    f"{'is' if len(extra) == 1 else 'are'} not integrated out" if extra else
                    f"does not draw {', '.join(repr(a) for a in lacking)}")
            raise error(f"marginal(): the proposal {m.proposal} must draw exactly the choices "
                        f"integrated out ({', '.join(want)}), but it {what}", span)

    def proposal_value(self, m: MarginalValue, kept: Var, span) -> GenValue:
        r = self.gen_value(m.proposal, [kept], {}, span)
        return dataclasses.replace(r, detached=m.detached)

    def auxiliary(self, m: MarginalValue, span) -> list[str]:
        return [a for a in self.trace_fields(m.family, span) if a not in m.keep]

    def trace_fields(self, g, span) -> dict[str, ArrayType]:
        """The addresses (and value types) a ``sim`` of ``g`` returns."""
        from .passes.addresses import trace_type  # a pure IR analysis

        if isinstance(g, GenValue):
            return dict(trace_type(self.specialise(g), self.functions, span).fields)
        if isinstance(g, MarginalValue):
            inner = self.trace_fields(g.family, span)
            return {a: inner[a] for a in g.keep if a not in dict(g.observations)}
        if isinstance(g, AutoValue):
            return self.auto_fields(g, span)
        return self.trace_fields(g.family, span)

    def detach_value(self, g, span=None):
        """``detach(g)``: every parameter ``g`` reaches is held. Of an estimated density
        (``marginal`` by importance sampling, ``normalize``) it is an error: the objectives
        that detach a family (stl, dreg, vimco, rws, forward_kl) rely on its log density
        being exact — its score ∇log q(z), or E_q[∇log q] = 0 — which an estimate is not."""
        if isinstance(g, (GenValue, AutoValue)):
            return dataclasses.replace(g, detached=True)
        if isinstance(g, MarginalValue) and g.exact:
            return dataclasses.replace(g, family=self.detach_value(g.family, span),
                                       detached=True)
        raise error(f"detach() of {describe(g)}: its log density is an estimate, but holding "
                    "its parameters is only sound for an exact log density (the objectives "
                    "that detach a family, stl, dreg, vimco, rws and forward_kl, use its score "
                    "or that E_q[∇log q(z)] = 0)", g.span or span,
                    help="use elbo, iwelbo, renyi or cubo with it, or marginal(..., exact=true) "
                         "where the auxiliaries have finite supports",
                    notes=[Note("detached here", span)] if g.span is not None and span else ())

    def condition_combinator(self, g, observations: dict, span):
        if isinstance(g, AutoValue):
            raise error(f"auto_{g.kind}(p) is a family over p's latent choices: it cannot be "
                        "conditioned; condition its target p instead", span)
        if isinstance(g, NormalizeValue):
            raise error("normalize(...) is a family over the target's latent choices: it "
                        "cannot be conditioned; condition its target p instead", span)
        obs = dict(g.observations)
        for a, v in observations.items():
            if a not in g.keep:
                raise error(f"'{a}' is observed, but the marginal keeps only "
                            f"{', '.join(g.keep)}", span,
                            help="observe a kept address (the others are integrated out)")
            if a in obs:
                raise error(f"address '{a}' is observed twice", span)
            obs[a] = v
        return dataclasses.replace(g, observations=tuple(sorted(obs.items())))

    # ---------------------------------------------------------------- sim and density

    def combinator_sim(self, g, b: Builder, span, reparam_only: bool) -> tuple:
        if isinstance(g, AutoValue):
            return self.auto_sim(g, b, span)
        if isinstance(g, NormalizeValue):
            return self._sim_normalize(g, b, span, reparam_only)
        if g.exact:
            return self.sim_exact_marginal(g, b, span, reparam_only)
        q = g.family
        t1, lq1 = self.emit_sim(q, b, span, reparam_only)
        kept = self._restrict(t1, g.keep, b, span, retval=True)
        if g.proposal is None:
            lw1 = self.emit_density(q, t1, b, span, scored=g.keep)
        else:
            aux = self._restrict(t1, tuple(self.auxiliary(g, span)), b, span)
            lr1 = self.emit_density(self.proposal_value(g, kept, span), aux, b, span)
            lw1 = self._fn("sub", [lq1, lr1], b, span)
        if g.particles == 1:
            return kept, lw1
        rest = self._particles(g.particles - 1, b, span,
                               lambda inner: self._marginal_weight(g, kept, inner, span,
                                                                   reparam_only))
        both = self._fn("stack", [lw1, self._fn("logsumexp", [rest], b, span)], b, span)
        return kept, self._log_mean(self._fn("logsumexp", [both], b, span), g.particles, b, span)

    def combinator_density(self, g, trace: Var, b: Builder, span) -> Var:
        if isinstance(g, AutoValue):
            return self.auto_density(g, trace, b, span)
        if isinstance(g, NormalizeValue):
            return self._density_normalize(g, trace, b, span)
        given = self._with_observations(g, trace, b, span)
        if g.exact:
            return self.density_exact_marginal(g, given, b, span)
        weights = self._particles(g.particles, b, span,
                                  lambda inner: self._marginal_weight(g, given, inner, span, False))
        return self._log_mean(self._fn("logsumexp", [weights], b, span), g.particles, b, span)

    def sim_exact_marginal(self, g, b, span, reparam_only):
        """``sim`` of ``marginal(q, keep, exact=true)``: q's full trace drawn, restricted to
        the kept choices, with their exact marginal log density."""
        t, _ = self.emit_sim(g.family, b, span, reparam_only)
        kept = self._restrict(t, g.keep, b, span, retval=True)
        return kept, self.density_exact_marginal(g, kept, b, span)

    def density_exact_marginal(self, g, given, b, span):
        """log Σ_u q(u, x), the choices u not kept summed out (compiler/summation.py)."""
        from .passes.addresses import trace_type  # pure IR analyses
        from .passes.inline import inline
        from .summation import Summation

        q = g.family
        if not isinstance(q, GenValue):
            raise error("marginal(q, ..., exact=true): q must be a generative function declared "
                        f"with 'gen' (got {describe(q)})", span)
        fn = self.specialise(q)
        body = inline(Program(dict(self.functions), fn.name)).functions[fn.name].body
        fields = dict(trace_type(fn, self.functions, span).fields)
        summed = frozenset(a for a in fields if a not in g.keep)
        eqns, lp = Summation(self.library, body, summed, g.detached or q.detached, span,
                             tables_outside=not self.minibatching).log_marginal(
            given, [v for _, v in q.dynamic], fields)
        for e in eqns:
            b.emit(e.op, e.outs, e.args, e.attrs, e.regions, e.span)
        return b.emit1("fn", REAL, [lp], {"name": "identity"}, span=span, hint="logp")

    def _marginal_weight(self, g: MarginalValue, kept: Var, b: Builder, span,
                         reparam_only: bool) -> Var:
        """One particle's log weight log q(u, x) − log r(u | x), u drawn from the proposal."""
        if g.proposal is None:
            _, lw = self.emit_generate(g.family, kept, b, span, weight=True,
                                       reparam_only=reparam_only)
            return lw
        u, lr = self.emit_sim(self.proposal_value(g, kept, span), b, span, reparam_only)
        full = self._merge(kept, u, b, span)
        lq = self.emit_density(g.family, full, b, span)
        return self._fn("sub", [lq, lr], b, span)

    def _with_observations(self, g: MarginalValue, trace: Var, b: Builder, span) -> Var:
        """The kept trace a marginal's density is given, its observations merged in."""
        want = sorted(a for a in g.keep if a not in dict(g.observations))
        have = sorted(trace.type.addresses)
        if have != want:
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            raise error("density() of a marginal needs a trace of exactly its kept, unobserved "
                        f"choices ({', '.join(want)}), but the trace "
                        + (f"lacks {', '.join(missing)}" if missing else
                           f"also holds {', '.join(extra)}"), span)
        if not g.observations:
            return trace
        given = {a: self.trace_get(trace, a, span, b) for a in want}
        return self.record_trace({**given, **dict(g.observations)}, span, b)

    def _sim_normalize(self, g: NormalizeValue, b: Builder, span, reparam_only: bool) -> tuple:
        fields = self.trace_fields(g.family, span)
        addresses = tuple(sorted(fields))
        outs: dict[str, Var] = {}

        def particle(inner: Builder) -> list[Var]:
            z, lq = self.emit_sim(g.family, inner, span, reparam_only)
            lp = self.emit_density(g.target, z, inner, span)
            return [self._fn("sub", [lp, lq], inner, span), lp] + [
                self.trace_get(z, a, span, inner) for a in addresses]

        stacked = self._particles(g.particles, b, span, particle, many=True)
        lw, lp = stacked[0], stacked[1]
        for a, v in zip(addresses, stacked[2:]):
            outs[a] = v
        dist = self.library.distributions["categorical"]
        if reparam_only:
            raise error("normalize(...) resamples a particle, a discrete choice, so its "
                        "draws cannot all be reparameterised (rsim)", span)
        j = b.emit1("sample", ArrayType("int32", ()), [lw],
                    {"address": RESAMPLE_ADDRESS, "dist": "categorical", "form": ("logits",),
                     "estimator": dist.default_estimator}, span=span, hint="j")
        x = self.record_trace({a: self._pick(outs[a], j, b, span) for a in addresses}, span, b)
        log_z = self._log_mean(self._fn("logsumexp", [lw], b, span), g.particles, b, span)
        return x, self._fn("sub", [self._pick(lp, j, b, span), log_z], b, span)

    def _density_normalize(self, g: NormalizeValue, trace: Var, b: Builder, span) -> Var:
        lp1 = self.emit_density(g.target, trace, b, span)
        lw1 = self._fn("sub", [lp1, self.emit_density(g.family, trace, b, span)], b, span)
        if g.particles == 1:
            return self._fn("sub", [lp1, lw1], b, span)

        def particle(inner: Builder) -> Var:
            z, lq = self.emit_sim(g.family, inner, span, False)
            return self._fn("sub", [self.emit_density(g.target, z, inner, span), lq], inner, span)

        rest = self._particles(g.particles - 1, b, span, particle)
        both = self._fn("stack", [lw1, self._fn("logsumexp", [rest], b, span)], b, span)
        log_z = self._log_mean(self._fn("logsumexp", [both], b, span), g.particles, b, span)
        return self._fn("sub", [lp1, log_z], b, span)

    # ---------------------------------------------------------------- helpers

    def _particles(self, n: int, b: Builder, span, body, many: bool = False):
        """A plate of ``n`` particles; ``body(inner_builder)`` gives each one's output(s).
        Returns the stacked output (or outputs, with ``many``)."""
        inner = Builder("plate", b, Var(INT, "k"), n)
        result = body(inner)
        results = list(result) if many else [result]
        outs = [Var(ArrayType(r.type.dtype, (n,) + r.type.shape), r.hint) for r in results]
        b.emit("plate", outs, [], {"size": n}, [Region(inner.params, inner.eqns, results)], span)
        return outs if many else outs[0]

    def _fn(self, name: str, args: list, b: Builder, span) -> Var:
        if name in ("sub", "add"):
            return b.emit1("fn", REAL, args, {"name": name}, span=span, hint="lw")
        return self.call_function(name, args, {}, span, b)

    def _log_mean(self, log_sum: Var, n: int, b: Builder, span) -> Var:
        if n == 1:
            return log_sum
        return b.emit1("fn", REAL, [log_sum, Lit(math.log(n), REAL)], {"name": "sub"},
                       span=span, hint="lw")

    def _pick(self, stacked: Var, j: Var, b: Builder, span) -> Var:
        t = stacked.type
        return b.emit1("index", ArrayType(t.dtype, t.shape[1:]), [stacked, j],
                       {"spec": (("d",),)}, span=span, hint=stacked.hint)

    def _restrict(self, t: Var, addresses: tuple[str, ...], b: Builder, span,
                  retval: bool = False) -> Var:
        """The trace of ``t``'s values at ``addresses`` (and its return value)."""
        ret_tree = t.type.retval if retval else None
        ret = []
        if ret_tree not in (None, ()):
            leaves = tree_leaves(ret_tree)
            ret = b.emit("trace_retval", [Var(lt, "ret") for lt in leaves], [t], {}, span=span)
        return self.record_trace({a: self.trace_get(t, a, span, b) for a in addresses}, span, b,
                                 ret_tree, ret)

    def _merge(self, a: Var, c: Var, b: Builder, span) -> Var:
        """One trace of the values of traces ``a`` and ``c`` (disjoint addresses)."""
        return self.record_trace({x: self.trace_get(t, x, span, b) for t in (a, c)
                                  for x in t.type.addresses}, span, b)
