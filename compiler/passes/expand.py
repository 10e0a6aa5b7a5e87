"""Expansion of ``sim`` and ``density`` into sampling and scoring code.

After inlining, a ``sim`` or ``density`` equation holds its model's body as a
region. This pass replaces it by that body, rewritten with an explicit
log-density accumulator:

- ``sim``: each ``x = sample[d](args)`` becomes ``x = draw[d](args)`` and
  ``lp_i = logpdf[d](x, args)`` (a masked sample's mask, its last argument,
  goes to the ``logpdf`` only); the drawn values are packed by
  ``make_trace`` into the trace, and ``Σ lp_i`` (factors included) is the
  log density;
- ``density``: each sample's value comes from the trace (``trace_get``) or,
  if observed, from the observations, and is scored by ``logpdf``;
- ``generate``: the given choices come from the trace, the others are drawn.

A ``density`` or ``generate`` with a ``scored`` attribute scores only the
choices at those addresses (and factors): with ``generate`` given the kept
choices of a ``marginal``, that is the importance weight q(u, x) / r(u | x)
of the drawn u, r being the family run with x held (compiler/combinators.py).

A plate or loop around choices gets extra outputs: its per-iteration log
density (summed after the region) and, for ``sim``, the stacked values; for
``density``, the stacked trace values enter it as mapped inputs. Inside
``expect``, a direct ``x ~ d`` becomes a ``draw`` (untraced, unscored).
Each ``draw`` keeps its ``estimator`` attribute for the ADEV backend. The
body of a call marked ``detached`` (``detach(g)`` in the source) reads its
parameters with ``stop``: gradients do not reach them through that call.
The choices of a call marked ``require`` (``rsim(g)``) carry it to the
``adev`` pass, which makes them reparameterised or reports why they cannot be.

Minibatches (``program.data_scale``: entry inputs holding B of N data points,
mapped to N/B): a plate that maps a minibatched input along its axis has its
log density scaled by N/B, so the full-data sum stays unbiased. A plate over
the batch written in the objective itself (one bound per data point, such as
a per-datum IWAE) is a sum of per-datum values: inside it, a data point read
as ``x[i]`` (the plate's own index) is that point's, and its stacked values
may leave only through ``sum`` (scaled by N/B) or ``mean`` (unbiased as it
is). Every other log-density term that reads minibatched data (a ``for`` loop
over the batch, whose terms depend on each other; a choice outside a plate
over the batch), and an objective whose value reads the batch other than
through such scaled terms, is rejected with its span, since no scale would
make it unbiased. :class:`Scaling` tracks which values read the batch and
which terms still need their scale.

    >>> # (t, lp) = sim[g]()   with g = { x ~ normal(0, 1) }   becomes
    >>> # x = draw[normal](0.0, 1.0); lp = logpdf[normal](x, 0.0, 1.0); t = make_trace[x](x)
"""

from __future__ import annotations

from typing import Callable

from ..ir import Atom, Eqn, Function, Lit, Program, Region, Var, ZERO, stacked
from ..types import REAL, ArrayType
from .addresses import sites

class Source:
    """Where the values of given choices come from: ``source(address, emit)`` returns an
    atom holding the value; ``has(address)`` says whether the address is given."""

    def __init__(self, get: Callable[[str, list], Atom], addresses: set[str] | None = None,
                 scored: frozenset[str] | None = None):
        self._get = get
        self.addresses = addresses  # None: every address is given (density)
        # Only the choices at these addresses are scored (None: all): an importance weight.
        self.scored = scored

    def scores(self, address: str) -> bool:
        return self.scored is None or address in self.scored

    def has(self, address: str) -> bool:
        return self.addresses is None or address in self.addresses

    def __call__(self, address: str, emit: list) -> Atom:
        return self._get(address, emit)


class Scaling:
    """The minibatch scale during expansion.

    ``scales``: minibatched inputs (and their casts) -> N/B. ``reads``: every
    value computed from minibatched data. ``unscaled``: log-density terms that
    read the batch and are not (yet) inside a plate scaled by N/B, with the
    span to blame. Inside a plate over the batch written in the objective
    (``objective_plate``: its span, index and N/B), a data point read by the
    plate's index does not read the batch, and ``points`` counts such reads;
    ``per_datum`` maps that plate's stacked outputs to N/B (they read the batch,
    except through ``sum`` and ``mean``: :meth:`reduce`). Inactive (no scale, or
    N/B = 1) it tracks nothing.
    """

    def __init__(self, scales: dict[Var, float]):
        self.scales = dict(scales)
        self.active = any(s != 1.0 for s in self.scales.values())
        self.reads: set[Var] = set(self.scales) if self.active else set()
        self.unscaled: dict[Var, tuple[str, object]] = {}
        # The objective-level plate over the batch being expanded, if any: (span, index, N/B).
        self.objective_plate: tuple | None = None
        self.points = 0
        self.per_datum: dict[Var, float] = {}
        # (for the message: the first use of per-datum values other than sum or mean, or
        # the first loop in the objective over minibatched data, as (why, span))
        self.misused: tuple | None = None
        self.packed: dict[Var, dict[str, float]] = {}  # traces packing minibatched inputs

    def forward(self, e: Eqn, args: list) -> None:
        """A minibatched input packed into a trace and read back out (an exact marginal's
        density reads its data so) is still that input, with its N/B."""
        if e.op == "make_trace":
            scaled = {a: self.scales[v] for a, v in zip(e.attrs["addresses"], args)
                      if isinstance(v, Var) and v in self.scales}
            if scaled:
                self.packed[e.outs[0]] = scaled
        elif e.op == "trace_get" and args[0] in self.packed:
            scale = self.packed[args[0]].get(e.attrs["address"])
            if scale is not None:
                self.scales[e.outs[0]] = scale

    def read(self, atoms) -> bool:
        return self.active and any(isinstance(a, Var) and a in self.reads for a in atoms)

    def mark(self, outs, atoms) -> None:
        """``outs`` read the batch if any of ``atoms`` does."""
        if self.read(atoms):
            self.reads.update(o for o in outs if isinstance(o, Var))

    def point(self, e: Eqn, args: list) -> bool:
        """Whether ``e`` reads one data point, ``x[i, ...]`` with ``x`` minibatched along
        the objective plate's axis and ``i`` its index (so it does not read the batch)."""
        if (self.objective_plate is None or e.op != "index" or len(args) < 2
                or not isinstance(args[0], Var) or args[0] not in self.scales
                or args[0].type.shape[:1] != (self.objective_plate[3],)
                or args[1] is not self.objective_plate[1] or e.attrs["spec"][0] != ("d",)):
            return False
        self.points += 1
        return True

    def reduce(self, e: Eqn, args: list, out: list) -> bool:
        """``sum`` or ``mean`` of an objective plate's stacked per-datum values: the sum
        scaled by N/B (and the mean as it is) estimates the full data's, so the result
        does not read the batch. Emits ``e`` (and the scaling) into ``out`` if so."""
        if not (e.op == "fn" and e.attrs.get("name") in ("sum", "mean") and len(args) == 1
                and isinstance(args[0], Var) and args[0] in self.per_datum
                and e.attrs.get("axis") in (None, 0, (0,))):
            return False
        scale = self.per_datum[args[0]]
        if e.attrs["name"] == "mean":
            out.append(Eqn(e.op, e.outs, args, e.attrs, [], e.span))
            return True
        total = Var(e.outs[0].type, "total")
        out.append(Eqn(e.op, [total], args, e.attrs, [], e.span))
        out.append(Eqn("fn", [e.outs[0]], [total, Lit(float(scale), REAL)], {"name": "mul"},
                       [], e.span))
        return True

    def term(self, lp: Atom, atoms, span, why: str) -> None:
        """A log-density term ``lp`` computed from ``atoms``: unscaled if it reads the batch."""
        if self.read(atoms) and isinstance(lp, Var):
            self.reads.add(lp)
            self.unscaled[lp] = (why, span)

    def first_unscaled(self, terms) -> tuple[str, object] | None:
        return next((self.unscaled[t] for t in terms if isinstance(t, Var) and t in self.unscaled),
                    None)


def _first_reading(region: Region, scaling: "Scaling"):
    """The span of the first equation whose value reads the batch (for the message)."""
    for e in region.eqns:
        if e.span is not None and any(o in scaling.reads for o in e.outs):
            return e.span
    return None


def _unscaled_error(why: str, span) -> Exception:
    from ..diagnostics import error

    if why == "value":
        return error("the objective's value reads minibatched data other than through log "
                     "densities in a plate over the batch, or the sum or mean of a plate over "
                     "the batch in the objective, which fit() scales by N/B; anything else "
                     "computed from the batch would estimate another objective", span,
                     help="score the data with '~' inside a plate over the batch "
                          "(plate i in size(y) { y ~ ... }), or sum per-datum values "
                          "(plate i in size(y) { v = ... }; sum(v)), or fit on all the data "
                          "(no batch_size)")
    if why == "loop":
        return error("this for loop reads minibatched data, but a loop's log density cannot be "
                     "scaled by N/B: its steps depend on each other, so a random subset of them "
                     "does not estimate the whole", span,
                     help="for independent data points use a plate; for a sequence, fit on all "
                          "the data (no batch_size)")
    return error("this log density reads minibatched data outside a plate over the batch, so it "
                 "cannot be scaled by N/B to estimate the full-data objective", span,
                 help="read each data point inside a plate over the batch "
                      "(plate i in size(y) { y ~ ... }), or fit on all the data (no batch_size)")


def expand(program: Program) -> Program:
    entry = program.functions[program.entry]
    subst: dict[Var, Atom] = {}
    scaling = Scaling(program.data_scale)
    eqns, _, _ = _rewrite(entry.body.eqns, "plain", subst, None, scaling)
    body = Region(entry.body.params, eqns, [_sub(o, subst) for o in entry.body.outs])
    if scaling.read(body.outs):
        raise _unscaled_error(*(scaling.misused or ("value", _first_reading(body, scaling))))
    return Program({entry.name: Function(entry.name, body, entry.kind, entry.span)},
                   program.entry, program.params, program.data_scale)


def _sub(a: Atom, subst: dict[Var, Atom]) -> Atom:
    return a if isinstance(a, Lit) else subst.get(a, a)


def _sum_terms(terms: list[Atom], eqns: list[Eqn], scaling: "Scaling | None" = None) -> Atom:
    if not terms:
        return ZERO
    total = terms[0]
    for t in terms[1:]:
        out = Var(REAL, "lp")
        eqns.append(Eqn("fn", [out], [total, t], {"name": "add"}))
        total = out
    if scaling is not None and len(terms) > 1:
        blame = scaling.first_unscaled(terms)
        if blame is not None:
            scaling.reads.add(total)
            scaling.unscaled[total] = blame
    return total


def _rewrite(eqns_in: list[Eqn], mode: str, subst: dict[Var, Atom],
             source: Source | None, scaling: Scaling
             ) -> tuple[list[Eqn], list[Atom], dict[str, Atom]]:
    """Rewrite equations under a mode: plain, expect, sim or density.

    Returns the new equations, the log-density terms and (sim) the drawn
    values by address. ``scaling`` tracks the minibatch scale (see :class:`Scaling`).
    """
    out: list[Eqn] = []
    terms: list[Atom] = []
    values: dict[str, Atom] = {}
    for e in eqns_in:
        args = [_sub(a, subst) for a in e.args]
        if e.op == "sample":
            x = e.outs[0]
            attrs = {k: e.attrs[k] for k in ("dist", "form", "estimator", "address", "baseline")
                     if k in e.attrs}  # a constant REINFORCE baseline is an attribute
            # ``x ~ d if m``: the mask (the last argument) reaches the logpdf only; every
            # element is still drawn, as numpyro's mask handler does.
            mask = [args.pop()] if e.attrs.get("masked") else []
            drawn = mode in ("sim", "expect", "plain") or (
                mode == "generate" and not source.has(e.attrs["address"]))
            if drawn:
                out.append(Eqn("draw", [x], args, attrs, [], e.span))
                value: Atom = x
                values[e.attrs["address"]] = x
                scaling.mark([x], args)
            else:
                value = source(e.attrs["address"], out)
                subst[x] = value
            if mode in ("sim", "density", "generate") and (
                    source is None or source.scores(e.attrs["address"])):
                lp = Var(REAL, "lp")
                out.append(Eqn("logpdf", [lp], [value] + args[:len(e.attrs["form"])] + mask,
                               {"dist": e.attrs["dist"], "form": e.attrs["form"],
                                **({"masked": True} if mask else {})}, [], e.span))
                scaling.term(lp, [value] + args + mask, e.span, "choice")
                terms.append(lp)
        elif e.op == "factor":
            scaling.term(args[0], args, e.span, "factor")
            terms.append(args[0])
        elif e.op in ("sim", "density", "generate"):
            expanded = _expand_call(e, args, subst, scaling)
            if e.attrs.get("detached"):
                _hold_params(expanded)
            if e.attrs.get("require"):
                _require(expanded, e.attrs["require"])
            out.extend(expanded)
        elif e.op in ("plate", "scan"):
            out.extend(_rewrite_loop(e, args, mode, subst, source, terms, values, scaling))
        elif e.op == "cond":
            new_regions, lps = [], []
            for r in e.regions:
                inner, inner_terms, _ = _rewrite(r.eqns, mode, subst, source, scaling)
                lp = _sum_terms(inner_terms, inner, scaling)
                lps.append(lp)
                new_regions.append(Region(r.params, inner, [_sub(o, subst) for o in r.outs] + [lp]))
            scaling.mark(e.outs, args + [o for r in new_regions for o in r.outs])
            if mode in ("sim", "density", "generate") and any(lp is not ZERO for lp in lps):
                lp_out = Var(REAL, "lp")
                out.append(Eqn("cond", e.outs + [lp_out], args, e.attrs, new_regions, e.span))
                blame = scaling.first_unscaled(lps)
                if blame is not None:
                    scaling.reads.add(lp_out)
                    scaling.unscaled[lp_out] = blame
                terms.append(lp_out)
            else:
                for r in new_regions:
                    r.outs.pop()
                out.append(Eqn("cond", e.outs, args, e.attrs, new_regions, e.span))
        elif e.op == "expect":
            r = e.regions[0]
            inner, _, _ = _rewrite(r.eqns, "expect", subst, None, scaling)
            new_outs = [_sub(o, subst) for o in r.outs]
            scaling.mark(e.outs, args + new_outs)
            out.append(Eqn("expect", e.outs, args, e.attrs,
                           [Region(r.params, inner, new_outs)], e.span))
        elif scaling.active and scaling.reduce(e, args, out):
            pass
        else:
            regions = []
            for r in e.regions:
                inner, _, _ = _rewrite(r.eqns, mode, subst, source, scaling)
                regions.append(Region(r.params, inner, [_sub(o, subst) for o in r.outs]))
            if scaling.active:
                scaling.forward(e, args)
            if not (scaling.active and scaling.point(e, args)):
                scaling.mark(e.outs, args + [o for r in regions for o in r.outs])
                if scaling.misused is None and any(a in scaling.per_datum for a in args
                                                   if isinstance(a, Var)):
                    scaling.misused = ("value", e.span)
            out.append(Eqn(e.op, e.outs, args, e.attrs, regions, e.span))
    return out, terms, values


def _hold_params(eqns: list[Eqn]) -> None:
    """Mark the parameter reads of a ``detach(g)`` call's body: gradients do not reach them."""
    for e in eqns:
        if e.op == "param":
            e.attrs = {**e.attrs, "stop": True}
        for r in e.regions:
            _hold_params(r.eqns)


def _require(eqns: list[Eqn], estimator: str) -> None:
    """Mark the choices of an ``rsim(g)`` call's body: they must use ``estimator``
    (the ``adev`` pass sets it, and rejects a choice that cannot)."""
    for e in eqns:
        if e.op == "draw":
            e.attrs = {**e.attrs, "require": estimator}
        for r in e.regions:
            _require(r.eqns, estimator)


def _expand_call(e: Eqn, args: list[Atom], subst: dict[Var, Atom],
                 scaling: Scaling) -> list[Eqn]:
    """Replace a ``sim``, ``density`` or ``generate`` equation by its model's rewritten body."""
    body = e.regions[0]
    out: list[Eqn] = []
    if e.op == "generate":
        given = args[0]
        for p, a in zip(body.params, args[1:]):
            subst[p] = a

        def get(address: str, emit: list[Eqn]) -> Atom:
            v = Var(given.type.field(address), address.replace("/", "_"))
            emit.append(Eqn("trace_get", [v], [given], {"address": address}, [], e.span))
            scaling.mark([v], [given])
            return v

        scored = e.attrs.get("scored")
        source = Source(get, set(given.type.addresses),
                        frozenset(scored) if scored is not None else None)
        inner, terms, values = _rewrite(body.eqns, "generate", subst, source, scaling)
        out.extend(inner)
        trace, lp = e.outs
        addresses = trace.type.addresses
        packed = [values[a] if a in values else source(a, out) for a in addresses]
        retval = [_sub(o, subst) for o in body.outs]
        out.append(Eqn("make_trace", [trace], packed + retval, {"addresses": addresses}, [], e.span))
        total = _sum_terms(terms, out)
        out.append(Eqn("fn", [lp], [total], {"name": "identity"}, [], e.span))
        return out
    if e.op == "sim":
        for p, a in zip(body.params, args):
            subst[p] = a
        inner, terms, values = _rewrite(body.eqns, "sim", subst, None, scaling)
        out.extend(inner)
        trace, lp = e.outs
        addresses = trace.type.addresses
        retval = [_sub(o, subst) for o in body.outs]
        out.append(Eqn("make_trace", [trace], [values[a] for a in addresses] + retval,
                       {"addresses": addresses}, [], e.span))
        scaling.mark([trace], [values[a] for a in addresses] + retval)
        total = _checked_total(terms, out, scaling)
        out.append(Eqn("fn", [lp], [total], {"name": "identity"}, [], e.span))
        return out
    observed = e.attrs["observed"]
    trace = args[0]
    obs = dict(zip(observed, args[1:1 + len(observed)]))
    for p, a in zip(body.params, args[1 + len(observed):]):
        subst[p] = a
    trace_type = trace.type

    site_types = {a: t for a, t, _ in sites(body, {})}

    def source(address: str, emit: list[Eqn]) -> Atom:
        if address in obs:
            value, want = obs[address], site_types.get(address)
            if want is not None and isinstance(value.type, ArrayType) and value.type.dtype != want.dtype:
                # Data arrive as floats for discrete choices (binarised images): cast, as numpyro would.
                cast = Var(ArrayType(want.dtype, value.type.shape), address.replace("/", "_"))
                emit.append(Eqn("fn", [cast], [value],
                                {"name": "int" if want.dtype == "int32" else "float"}, [], e.span))
                if value in scaling.scales:
                    scaling.scales[cast] = scaling.scales[value]
                scaling.mark([cast], [value])
                return cast
            return obs[address]
        v = Var(trace_type.field(address), address.replace("/", "_"))
        emit.append(Eqn("trace_get", [v], [trace], {"address": address}, [], e.span))
        scaling.mark([v], [trace])
        want = site_types.get(address)
        if want is not None and isinstance(v.type, ArrayType) and v.type.dtype != want.dtype:
            # Trace values of another numeric dtype (ints for a real choice): cast, as for data.
            cast = Var(ArrayType(want.dtype, v.type.shape), v.hint)
            emit.append(Eqn("fn", [cast], [v], {"name": "int" if want.dtype == "int32" else "float"},
                            [], e.span))
            return cast
        return v

    scored = e.attrs.get("scored")
    inner, terms, _ = _rewrite(body.eqns, "density", subst,
                               Source(source, None, frozenset(scored) if scored is not None else None),
                               scaling)
    out.extend(inner)
    total = _checked_total(terms, out, scaling)
    out.append(Eqn("fn", [e.outs[0]], [total], {"name": "identity"}, [], e.span))
    return out


def _checked_total(terms: list[Atom], out: list[Eqn], scaling: Scaling) -> Atom:
    """The log density of an expanded call; a term left unscaled by a minibatch is an error."""
    blame = scaling.first_unscaled(terms)
    if blame is not None and scaling.objective_plate is not None:
        from ..diagnostics import Note, error

        raise error("this log density reads minibatched data other than its own data point, "
                    "inside a plate over the batch in the objective: a per-datum value there "
                    "may read the batch only as x[i], with i that plate's index", blame[1],
                    notes=[Note("the objective's plate over the batch",
                                scaling.objective_plate[0])],
                    help="index the data by the plate's index (x[i]), or write the plate over "
                         "the data in the model and the family, or fit on all the data "
                         "(no batch_size)")
    if blame is not None:
        raise _unscaled_error(*blame)
    return _sum_terms(terms, out)


def _rewrite_loop(e: Eqn, args: list[Atom], mode: str, subst: dict[Var, Atom],
                  source: Source | None, terms: list[Atom], values: dict[str, Atom],
                  scaling: Scaling) -> list[Eqn]:
    """A plate or scan: thread choices' values and log densities through the region.

    A plate that maps a minibatched input (data given ``batch_size`` rows
    of N) has its log density scaled by N/B, keeping the full-data sum unbiased;
    any other loop whose terms read the batch passes them on unscaled.
    """
    out: list[Eqn] = []
    region = e.regions[0]
    n = e.attrs["size"] if e.op == "plate" else e.attrs["length"]
    params = list(region.params)
    new_args = list(args)
    inner_source = None
    if mode in ("density", "generate"):
        # Given choices inside get their slices of the stacked trace values as mapped inputs.
        slices: dict[str, Var] = {}
        for address, t, _ in sites(region, {}):
            if not source.has(address):
                continue
            outer = source(address, out)
            p = Var(ArrayType(outer.type.dtype, outer.type.shape[1:]), address.replace("/", "_"))
            params.append(p)
            new_args.append(outer)
            slices[address] = p
        inner_source = Source(lambda address, emit: slices[address], set(slices), source.scored)
    # A plate over the batch written in the objective (not in a generative function): one
    # value per data point; x[i] inside is that point's (Scaling.point).
    over_batch = (scaling.active and mode in ("expect", "plain") and e.op == "plate"
                  and scaling.objective_plate is None)
    scale = next((s for a, s in scaling.scales.items() if a.type.shape[:1] == (n,)), None)
    over_batch = over_batch and scale is not None
    points = scaling.points
    for p, a in zip(params[1:], new_args):
        if over_batch and isinstance(a, Var) and a in scaling.scales and a.type.shape[:1] == (n,):
            scaling.points += 1  # a data point, mapped in
        else:
            scaling.mark([p], [a])
    if e.op == "scan" and scaling.read(new_args):
        # A carry may read the batch from the second step on: treat every carry as reading it.
        scaling.reads.update(params[1:1 + e.attrs["carries"]])
        if mode == "expect" and scaling.misused is None:
            scaling.misused = ("loop", e.span)  # (an exact marginal's forward algorithm)
    outer_plate = scaling.objective_plate
    if over_batch:
        scaling.objective_plate = (e.span, params[0], scale, n)
    try:
        inner, inner_terms, inner_values = _rewrite(region.eqns, mode, subst, inner_source,
                                                    scaling)
    finally:
        scaling.objective_plate = outer_plate
    lp = _sum_terms(inner_terms, inner, scaling)
    outs = [_sub(o, subst) for o in region.outs]
    if over_batch and scaling.points > points:
        # It reads its data points one by one: its stacked values hold one value per data
        # point, whose sum (by N/B) or mean estimates the full data's; anything else reads
        # the batch.
        for stacked_out, o in zip(e.outs, outs):
            if not scaling.read([o]):
                scaling.per_datum[stacked_out] = scale
            scaling.reads.add(stacked_out)
    else:
        scaling.mark(e.outs, new_args + outs)
    new_outs = list(e.outs)
    scored = mode in ("sim", "density", "generate") and inner_terms
    if scored:
        outs.append(lp)
        lp_stacked = Var(stacked(REAL, n), "lp")
        new_outs.append(lp_stacked)
    drawn = sorted(inner_values) if mode in ("sim", "generate") else []
    for address in drawn:
        v = inner_values[address]
        outs.append(v)
        stacked_v = Var(stacked(v.type, n), address.replace("/", "_"))
        new_outs.append(stacked_v)
        values[address] = stacked_v
    out.append(Eqn(e.op, new_outs, new_args, e.attrs, [Region(params, inner, outs)], e.span))
    if scored:
        total = Var(REAL, "lp")
        out.append(Eqn("fn", [total], [lp_stacked], {"name": "sum", "axis": None}, [], e.span))
        scale = next((scaling.scales[a] for a in new_args if isinstance(a, Var)
                      and a in scaling.scales and e.op == "plate" and a.type.shape[:1] == (n,)),
                     None)
        if scale is not None and scale != 1.0:
            scaled = Var(REAL, "lp")
            out.append(Eqn("fn", [scaled], [total, Lit(float(scale), REAL)], {"name": "mul"},
                           [], e.span))
            total = scaled
        elif scaling.first_unscaled([lp]) is not None:
            # Not a plate over the batch: its terms stay unscaled; a loop is to blame for them.
            blame = ("loop", e.span) if e.op == "scan" else scaling.first_unscaled([lp])
            scaling.reads.add(total)
            scaling.unscaled[total] = blame
        terms.append(total)
    return out
