"""Automatic families: ``auto_normal(p)`` and the others, built from a target's trace type.

NumPyro's AutoGuides as generative functions: given a target ``p`` (a model,
usually conditioned on data), ``auto_normal(p)`` is a family over ``p``'s
latent choices (its trace type less its observed addresses). Each latent is
drawn on the real line, ``u ~ normal(loc, scale)`` with its own parameters,
and mapped onto the support of ``p``'s distribution there by numpyro's
``biject_to`` (the library's ``to_support``): a ``halfnormal`` latent gets a
log-normal, a ``beta`` latent a logit-normal, a ``dirichlet`` latent a
stick-breaking normal. By the change of variables its log density is

    log q(x) = Σ_latents  log normal(u; loc, scale) − log|det J(u)|,   x = T(u),

so ``sim`` returns that with the drawn trace, and ``density(auto_normal(p), t)``
computes ``u = T⁻¹(x)`` of each value and the same sum. The kinds:

- ``auto_normal``: mean field, as above (``loc`` at 0, ``scale`` 0.1: NumPyro's
  ``init_scale``), parameters ``auto_normal.<decl>.<address>.loc`` and ``.scale``;
- ``auto_delta``: a point mass at ``T(loc)``; log q = 0 (with ``elbo``, MAP);
- ``auto_mvn``: one normal over all the latents' unconstrained values, flattened
  and joined in address order, with a full ``scale_tril``;
- ``auto_lowrank(rank=r)``: the same with covariance ``W Wᵀ + diag(d)``, ``W`` of
  rank ``r`` (NumPyro's AutoLowRankMultivariateNormal's family; evaluated as a full
  covariance, a D x D Cholesky, which is cheap at the sizes these families are for);
- ``auto_iaf(hidden=h, layers=L)``: a normalising flow, L inverse autoregressive
  layers (numpyro's, MADE networks of hidden widths h, the order reversed between
  layers) on a standard normal, then onto the supports (NumPyro's AutoIAFNormal);
  its ``density`` inverts each layer (D network passes).

Everything is lowered into ops every family already uses (``param``, a
``sample`` of a normal, which the adev pass reparameterises, ``logpdf``,
library functions and ``make_trace``), so ``ppl ir --after lower`` shows it and
every objective and estimator applies. A discrete latent is an error pointing
at ``marginal(…, exact=true)``; so is a support whose bounds ``p`` computes from
its own draws (bounds given as literals or as ``p``'s arguments are fine).

    >>> sorted(AUTO_KINDS)
    ['auto_delta', 'auto_iaf', 'auto_lowrank', 'auto_mvn', 'auto_normal']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .builder import Builder
from .diagnostics import Note, error
from .ir import Function, Lit, ParamInfo, Region, Var
from .types import INT, REAL, ArrayType
from .values import AutoValue, GenValue, MarginalValue, describe

# The name of each automatic family in the source -> its kind.
AUTO_KINDS = {"auto_normal": "normal", "auto_delta": "delta", "auto_mvn": "mvn",
              "auto_lowrank": "lowrank", "auto_iaf": "iaf"}

INIT_SCALE = 0.1  # NumPyro's init_scale: the initial scale of every unconstrained draw


@dataclass(frozen=True)
class Latent:
    """One latent choice of a target, as an automatic family draws it: its address,
    value type, the type of its unconstrained value, its distribution row's name and
    form, and the atoms (in the caller) ``to_support`` is given as its arguments
    (``None`` for the identity, a real-line support)."""

    address: str
    type: ArrayType
    free: ArrayType
    dist: str
    form: tuple[str, ...]
    args: tuple | None
    span: Any


class AutoLowering:
    """Mixed into the lowering (through CombinatorLowering): the automatic families'
    values, ``sim`` and ``density``."""

    # ---------------------------------------------------------------- values

    def auto_value(self, name: str, target, options: dict, span, target_span=None) -> AutoValue:
        """``auto_normal(target)`` and the others, checked: every latent of the target is
        continuous and its support can be reached when the family is lowered."""
        latents = None
        if isinstance(target, MarginalValue) and isinstance(target.family, GenValue):
            # marginal(g, keep=[…]) | obs: a family over the kept choices that are not
            # observed (NumPyro's AutoDelta on a model whose discrete sites are enumerated).
            observed = {a for a, _ in target.observations} | {
                a for a, _ in target.family.observations}
            latents = tuple(a for a in target.keep if a not in observed)
            target = target.family
        if not isinstance(target, GenValue):
            raise error(f"{name}(p): p must be a generative function declared with 'gen' "
                        f"(a model, usually conditioned on data) or a marginal of one, got "
                        f"{describe(target)}", target_span or span)
        kind = AUTO_KINDS[name]
        opts: tuple = ()
        if kind == "lowrank":
            rank = options.get("rank")
            if isinstance(rank, Lit):
                rank = rank.value
            if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
                raise error(f"auto_lowrank(): rank must be a static int of at least 1, got "
                            f"{describe(rank)}", span)
            opts = (("rank", rank),)
        value = AutoValue(target, kind, opts, span, latents=latents)
        drawn = self.auto_latents(value, span)  # reports what cannot be drawn, where written
        if kind == "iaf":
            size = sum(lat.free.size for lat in drawn)
            value = AutoValue(target, kind, self._flow_options(options, size, span), span,
                              latents=latents)
        return value

    def _flow_options(self, options: dict, size: int, span) -> tuple:
        """``hidden`` (the widths of the network's hidden layers: an int for two of that
        width, or a tuple; default two of the latent size, NumPyro's) and ``layers``."""
        hidden = options.get("hidden")
        layers = options.get("layers", 3)
        hidden, layers = (v.value if isinstance(v, Lit) else v for v in (hidden, layers))
        if hidden is None:
            hidden = (size, size)
        elif isinstance(hidden, int) and not isinstance(hidden, bool):
            hidden = (hidden, hidden)
        if not (isinstance(hidden, tuple) and hidden
                and all(isinstance(h, int) and not isinstance(h, bool) and h >= size
                        for h in hidden)):
            got = repr(hidden) if isinstance(hidden, (int, tuple)) else describe(hidden)
            raise error(f"auto_iaf(): hidden gives the widths of the network's hidden layers, "
                        f"each at least the number of unconstrained latent values ({size}): an "
                        f"int or a tuple of ints, got {got}", span,
                        help=f"e.g. hidden=({2 * size}, {2 * size})")
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise error(f"auto_iaf(): layers must be a static int of at least 1, got "
                        f"{describe(layers)}", span)
        return (("hidden", tuple(hidden)), ("layers", layers))

    def auto_latents(self, g: AutoValue, span) -> list[Latent]:
        """The target's latent choices, in address order, with what drawing them needs."""
        from .passes.addresses import site_eqns  # a pure IR analysis

        target = g.target
        fn = self.specialise(target)
        observed = {a for a, _ in target.observations}
        inputs = dict(zip(fn.body.params, [v for _, v in target.dynamic]))
        latents = []
        name = f"auto_{g.kind}"
        for address, t, eqn, top in sorted(site_eqns(fn.body, self.functions),
                                           key=lambda s: s[0]):
            if address in observed or (g.latents is not None and address not in g.latents):
                continue  # (a marginal target: only its kept, unobserved choices)
            row = self.library.distributions[eqn.attrs["dist"]]
            drawn = [Note(f"{target.decl} draws '{address}' here", eqn.span)] if eqn.span else []
            if row.discrete:
                raise error(f"{name}(p): '{address}' is a discrete choice ({row.name}), which a "
                            "family drawn on the real line cannot draw", g.span or span,
                            notes=drawn,
                            help="sum the discrete choices out of the target exactly, with "
                                 "marginal(..., exact=true), or write the family as a 'gen'")
            form = tuple(eqn.attrs["form"])
            atoms = eqn.args[:len(form)]
            support = row.support_of(form, [a.value if isinstance(a, Lit) else a.type
                                            for a in atoms])
            args = self._support_args(g, address, atoms, form, support, inputs, top, drawn, span)
            free = self._free_type(name, address, t, row.name, form, args, drawn, span)
            latents.append(Latent(address, t, free, row.name, form, args, eqn.span))
        if not latents:
            raise error(f"{name}(p): {target.decl} has no latent choices (every one is "
                        "observed), so there is nothing to fit", g.span or span)
        return latents

    def _support_args(self, g, address, atoms, form, support, inputs, top, drawn, span):
        """The atoms ``to_support`` reads: literals, the target's arguments, and ones in
        place of the parameters the support does not depend on (None: the real line)."""
        if support.kind == "interval" and support.lower == -math.inf and support.upper == math.inf:
            return None
        out = []
        for param, a in zip(form, atoms):
            if isinstance(a, Lit):
                out.append(a)
            elif top and a in inputs:
                out.append(inputs[a])
            elif param in support.depends:
                raise error(f"auto_{g.kind}(p): the support of '{address}' depends on its "
                            f"{param}, which {g.target.decl} computes as it runs, from its own "
                            "draws, so no one bijection maps onto it", g.span or span, notes=drawn,
                            help=f"give the {param} as a literal or as an argument of "
                                 f"{g.target.decl}, or write the family as a 'gen'")
            else:  # the support does not read it: any value of its type will do
                out.append(a.type if isinstance(a, Var) else a)
        return tuple(out)

    def _free_type(self, name, address, t, dist, form, args, drawn, span) -> ArrayType:
        if args is None:
            return t
        f = self.library.functions["from_support"]
        types = tuple(a if isinstance(a, ArrayType) else a.type for a in args)
        try:
            return f.result_type({"x": t, "args": types, "dist": dist, "form": form})
        except ValueError as ex:
            raise error(f"{name}(p): there is no bijection onto the support of {dist} at "
                        f"'{address}': {ex}", span, notes=drawn) from None

    # ---------------------------------------------------------------- parameters

    def auto_param(self, g: AutoValue, name: str, ptype: ArrayType, constraint: tuple,
                   init, b: Builder, span) -> Var:
        """The family's parameter ``auto_<kind>.<decl>.<name>``: registered once, its
        initial value from ``init(builder)``; held (``stop_gradient``) when detached."""
        path = f"auto_{g.kind}.{g.target.decl}.{name}"
        previous = self.params.get(path)
        if previous is not None and previous.type != ptype:
            raise error(f"parameter {path} has type {ptype!r} here but {previous.type!r} in "
                        f"another use of auto_{g.kind}({g.target.decl})", span,
                        help="one path names one parameter: wherever a program uses "
                             f"auto_{g.kind}({g.target.decl}), its target's choices must have "
                             "the same shapes and the family the same options (rank, hidden, "
                             "layers)")
        if previous is None:
            ib = Builder("function")
            value = init(ib)
            self.params[path] = ParamInfo(path, ptype, constraint,
                                          Function(f"init {path}", Region([], ib.eqns, [value]),
                                                   "init", span), span)
        v = b.emit1("param", ptype, [], {"path": path}, span=span, hint=name.split(".")[-1])
        if g.detached:
            v = self.call_function("stop_gradient", [v], {}, span, b)
        return v

    def _filled(self, value: float, ptype: ArrayType):
        def init(ib: Builder):
            return ib.emit1("fn", ptype, [Lit(float(value), REAL)],
                            {"name": "broadcast_to", "shape": ptype.shape})
        return init

    # ---------------------------------------------------------------- the bijections

    def _support_call(self, fname: str, v: Var, lat: Latent, b: Builder, span) -> Var:
        args = [self._placeholder(a, b, span) if isinstance(a, ArrayType) else a
                for a in lat.args]
        return self.call_function(fname, [v, *args], {"dist": lat.dist, "form": lat.form},
                                  span, b)

    def _placeholder(self, t: ArrayType, b: Builder, span) -> Var:
        one = Lit(1, INT) if t.dtype == "int32" else Lit(1.0, REAL)
        return b.emit1("fn", t, [one], {"name": "broadcast_to", "shape": t.shape}, span=span)

    def _constrain(self, u: Var, lat: Latent, b: Builder, span) -> tuple[Var, Var | None]:
        """(x, log|det J|) of the latent's unconstrained value ``u`` (None: the identity)."""
        if lat.args is None:
            return u, None
        return (self._support_call("to_support", u, lat, b, span),
                self._support_call("to_support_log_det", u, lat, b, span))

    def _unconstrain(self, x: Var, lat: Latent, b: Builder, span) -> tuple[Var, Var | None]:
        if lat.args is None:
            return x, None
        u = self._support_call("from_support", x, lat, b, span)
        return u, self._support_call("to_support_log_det", u, lat, b, span)

    # ---------------------------------------------------------------- sim and density

    def auto_sim(self, g: AutoValue, b: Builder, span) -> tuple:
        latents = self.auto_latents(g, span)
        if g.kind in ("normal", "delta"):
            values, terms, jacobians = [], [], []
            for lat in latents:
                loc = self.auto_param(g, f"{lat.address}.loc", lat.free, ("real",),
                                      self._filled(0.0, lat.free), b, span)
                if g.kind == "delta":
                    x, _ = self._constrain(loc, lat, b, span)
                    values.append(x)
                    continue
                scale = self._scale(g, lat.address, lat.free, b, span)
                u = self._draw("normal", ("loc", "scale"), lat.free, [loc, scale], lat.address,
                               b, span)
                terms.append(self._logpdf("normal", ("loc", "scale"), u, [loc, scale], b, span))
                x, log_det = self._constrain(u, lat, b, span)
                values.append(x)
                if log_det is not None:
                    jacobians.append(log_det)
            return self._auto_trace(latents, values, b, span), self._log_q(terms, jacobians, b, span)
        v, terms, jacobians = self._joint_draw(g, latents, b, span)
        values, start = [], 0
        for lat in latents:
            piece = b.emit1("index", ArrayType("float32", (lat.free.size,)), [v],
                            {"spec": (("s", start, start + lat.free.size),)}, span=span,
                            hint="u")
            start += lat.free.size
            u = self.call_function("reshape", [piece, lat.free.shape], {}, span, b)
            x, log_det = self._constrain(u, lat, b, span)
            values.append(x)
            if log_det is not None:
                jacobians.append(log_det)
        return self._auto_trace(latents, values, b, span), self._log_q(terms, jacobians, b, span)

    def auto_density(self, g: AutoValue, trace: Var, b: Builder, span) -> Var:
        latents = self.auto_latents(g, span)
        want = [lat.address for lat in latents]
        have = sorted(trace.type.addresses)
        if have != want:
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            raise error(f"density() of auto_{g.kind}({g.target.decl}) needs a trace of exactly "
                        f"its target's latent choices ({', '.join(want)}), but the trace "
                        + (f"lacks {', '.join(missing)}" if missing else
                           f"also holds {', '.join(extra)}"), span)
        terms, jacobians, frees = [], [], []
        for lat in latents:
            x = self.trace_get(trace, lat.address, span, b)
            if x.type.dtype != "float32":
                x = b.emit1("fn", ArrayType("float32", x.type.shape), [x], {"name": "float"},
                            span=span)
            if g.kind == "delta":  # a point mass: its value must be the point
                loc = self.auto_param(g, f"{lat.address}.loc", lat.free, ("real",),
                                      self._filled(0.0, lat.free), b, span)
                point, _ = self._constrain(loc, lat, b, span)
                terms.append(self._logpdf("delta", ("v",), x, [point], b, span))
                continue
            u, log_det = self._unconstrain(x, lat, b, span)
            if log_det is not None:
                jacobians.append(log_det)
            if g.kind == "normal":
                loc = self.auto_param(g, f"{lat.address}.loc", lat.free, ("real",),
                                      self._filled(0.0, lat.free), b, span)
                scale = self._scale(g, lat.address, lat.free, b, span)
                terms.append(self._logpdf("normal", ("loc", "scale"), u, [loc, scale], b, span))
            else:
                frees.append(self.call_function("reshape", [u, (lat.free.size,)], {}, span, b))
        if frees:
            v = frees[0] if len(frees) == 1 else self.call_function("concat", frees, {}, span, b)
            more, flows = self._joint_score(g, latents, v, b, span)
            terms += more
            jacobians += flows
        return self._log_q(terms, jacobians, b, span)

    # ---------------------------------------------------------------- pieces

    def _scale(self, g, address, free, b, span) -> Var:
        return self.auto_param(g, f"{address}.scale", free, ("lower", 0.0),
                               self._filled(INIT_SCALE, free), b, span)

    def _joint_draw(self, g: AutoValue, latents: list[Latent], b: Builder, span):
        """The flat unconstrained draw of the joint families: (v, log-density terms,
        log-Jacobians of the flow's layers)."""
        size = sum(lat.free.size for lat in latents)
        vec = ArrayType("float32", (size,))
        if g.kind != "iaf":
            form, dparams = self._joint(g, latents, b, span)
            v = self._draw(*form, vec, dparams, "auto#u", b, span)
            return v, [self._logpdf(*form, v, dparams, b, span)], []
        base = [self._filled(0.0, vec)(b), Lit(1.0, REAL)]
        z = self._draw("normal", ("loc", "scale"), vec, base, "auto#u", b, span)
        terms, jacobians = [self._logpdf("normal", ("loc", "scale"), z, base, b, span)], []
        for layer, w in enumerate(self._flow_weights(g, size, b, span)):
            if layer:  # reverse the order between layers, as NumPyro's AutoIAFNormal
                z = self.call_function("flip", [z], {}, span, b)
            hidden = dict(g.options)["hidden"]
            jacobians.append(self.call_function("iaf_log_det", [z, w], {"hidden": hidden}, span,
                                                b))
            z = self.call_function("iaf", [z, w], {"hidden": hidden}, span, b)
        return z, terms, jacobians

    def _joint_score(self, g: AutoValue, latents: list[Latent], v: Var, b: Builder, span):
        """(log-density terms, flow log-Jacobians) of the flat unconstrained value ``v``."""
        if g.kind != "iaf":
            form, dparams = self._joint(g, latents, b, span)
            return [self._logpdf(*form, v, dparams, b, span)], []
        hidden = dict(g.options)["hidden"]
        jacobians = []
        weights = self._flow_weights(g, v.type.size, b, span)
        for layer in reversed(range(len(weights))):
            v = self.call_function("iaf_inverse", [v, weights[layer]], {"hidden": hidden}, span, b)
            jacobians.append(self.call_function("iaf_log_det", [v, weights[layer]],
                                                {"hidden": hidden}, span, b))
            if layer:
                v = self.call_function("flip", [v], {}, span, b)
        base = [self._filled(0.0, v.type)(b), Lit(1.0, REAL)]
        return [self._logpdf("normal", ("loc", "scale"), v, base, b, span)], jacobians

    def _flow_weights(self, g: AutoValue, size: int, b: Builder, span) -> list[Var]:
        opts = dict(g.options)
        hidden = opts["hidden"]
        probe = self.library.functions["iaf_weights"].result_type(
            {"x": ArrayType("float32", (size,)), "hidden": hidden})
        out = []
        for layer in range(opts["layers"]):
            def init(ib: Builder):
                return ib.emit1("init", probe, [], {"name": "iaf_init", "shape": probe.shape,
                                                    "dim": size, "hidden": hidden})
            out.append(self.auto_param(g, f"layer{layer}.weights", probe, ("real",), init, b,
                                       span))
        return out

    def _joint(self, g: AutoValue, latents: list[Latent], b: Builder, span):
        """The joint normal of ``auto_mvn`` / ``auto_lowrank``: (dist, form) and its parameters."""
        size = sum(lat.free.size for lat in latents)
        vec = ArrayType("float32", (size,))
        loc = self.auto_param(g, "loc", vec, ("real",), self._filled(0.0, vec), b, span)
        if g.kind == "mvn":
            mat = ArrayType("float32", (size, size))

            def tril_init(ib: Builder):
                eye = self.call_function("eye", [size], {}, span, ib)
                return ib.emit1("fn", mat, [eye, Lit(INIT_SCALE, REAL)], {"name": "mul"})

            tril = self.auto_param(g, "scale_tril", mat, ("lower_cholesky",), tril_init, b, span)
            return ("mvnormal", ("loc", "scale_tril")), [loc, tril]
        rank = dict(g.options)["rank"]
        factor_type = ArrayType("float32", (size, rank))

        def factor_init(ib: Builder):  # not 0, where the factor's gradient vanishes
            return ib.emit1("init", factor_type, [], {"name": "normal_init",
                                                      "shape": factor_type.shape,
                                                      "scale": INIT_SCALE})

        factor = self.auto_param(g, "cov_factor", factor_type, ("real",), factor_init, b, span)
        diag = self.auto_param(g, "cov_diag", vec, ("lower", 0.0),
                               self._filled(INIT_SCALE ** 2, vec), b, span)
        # W Wᵀ + diag(d), as a full covariance (a Cholesky of D x D: automatic families are small)
        low = self.call_function("matmul", [factor, self.call_function("transpose", [factor], {},
                                                                        span, b)], {}, span, b)
        cov = self.call_function("add", [low, self.call_function("diag", [diag], {}, span, b)], {},
                                 span, b)
        return ("mvnormal", ("loc", "covariance_matrix")), [loc, cov]

    def _draw(self, dist: str, form: tuple, t: ArrayType, args: list, address: str,
              b: Builder, span) -> Var:
        row = self.library.distributions[dist]
        return b.emit1("sample", t, list(args),
                       {"address": address, "dist": dist, "form": form,
                        "estimator": row.default_estimator}, span=span, hint="u")

    def _logpdf(self, dist: str, form: tuple, x: Var, args: list, b: Builder, span) -> Var:
        return b.emit1("logpdf", REAL, [x] + list(args), {"dist": dist, "form": form},
                       span=span, hint="lq")

    def _log_q(self, terms: list, jacobians: list, b: Builder, span):
        """Σ terms − Σ log|det J| (the change of variables onto the supports)."""
        total = terms[0] if terms else Lit(0.0, REAL)
        for t in terms[1:]:
            total = self._fn("add", [total, t], b, span)
        for j in jacobians:
            total = self._fn("sub", [total, j], b, span)
        return total

    def _auto_trace(self, latents: list[Latent], values: list, b: Builder, span) -> Var:
        return self.record_trace({lat.address: v for lat, v in zip(latents, values)}, span, b)

    def auto_fields(self, g: AutoValue, span) -> dict[str, ArrayType]:
        return {lat.address: lat.type for lat in self.auto_latents(g, span)}
