"""Address analysis: what a generative function draws, and checks on it.

:func:`trace_type` computes the type of a generative function's trace from
its IR: every ``sample`` at its address, stacked by each enclosing plate or
loop, and every ``call`` 's choices nested under the call's address. It
rejects an address drawn twice.

:func:`check_addresses` (a pass, run after inlining) checks every ``density``
against the trace it is given: the trace must hold every address the model
draws that is not observed, no address the model does not draw, and values
of the right types; every observed address must be one the model draws.

    >>> # trace_type(f, functions).fields  ->  (("flips", int[10]), ("p", real))
"""

from __future__ import annotations

from ..diagnostics import CompileError, DataError, Diagnostic, Note, Span, did_you_mean
from ..ir import Function, Lit, Program, Region, call_prefix, stacked, walk
from ..types import ArrayType, TraceType


def sites(region: Region, functions: dict[str, Function], prefix: str = "",
          sizes: tuple[int, ...] = ()) -> list[tuple[str, ArrayType, Span | None]]:
    """Every random choice of a region: (address, stacked type, span)."""
    return [(a, t, eqn.span) for a, t, eqn, _ in site_eqns(region, functions, prefix, sizes)]


def site_eqns(region: Region, functions: dict[str, Function], prefix: str = "",
              sizes: tuple[int, ...] = (), top: bool = True
              ) -> list[tuple[str, ArrayType, object, bool]]:
    """Every random choice of a region: (address, stacked type, its ``sample`` equation,
    whether it is drawn in the region itself, where its arguments are the region's)."""
    out = []
    for eqn in region.eqns:
        if eqn.op == "sample":
            t = eqn.outs[0].type
            for n in reversed(sizes):
                t = stacked(t, n)
            out.append((prefix + eqn.attrs["address"], t, eqn, top))
        elif eqn.op == "call":
            callee = eqn.regions[0] if eqn.regions else functions[eqn.attrs["callee"]].body
            out.extend(site_eqns(callee, functions, call_prefix(prefix, eqn.attrs["address"]),
                                 sizes, False))
        elif eqn.op == "plate":
            out.extend(site_eqns(eqn.regions[0], functions, prefix, sizes + (eqn.attrs["size"],),
                                 False))
        elif eqn.op == "scan":
            out.extend(site_eqns(eqn.regions[0], functions, prefix,
                                 sizes + (eqn.attrs["length"],), False))
        elif eqn.op == "cond":
            for r in eqn.regions:
                out.extend(site_eqns(r, functions, prefix, sizes, False))
    return out


def trace_type(fn: Function | Region, functions: dict[str, Function],
               span: Span | None = None) -> TraceType:
    """The trace type of a generative function; an address drawn twice is an error."""
    seen: dict[str, Span | None] = {}
    fields = []
    errors = []
    name = fn.name if isinstance(fn, Function) else "the model"
    body = fn.body if isinstance(fn, Function) else fn
    for address, t, site_span in sites(body, functions):
        if address in seen:
            notes = (Note("first drawn here", seen[address]),) if seen[address] else ()
            errors.append(Diagnostic(f"address '{address}' is drawn twice in {name}",
                                     site_span or span, notes=notes,
                                     help="give each random choice its own name, or an "
                                          "explicit address with 'at \"...\"'"))
            continue
        seen[address] = site_span
        fields.append((address, t))
    if errors:
        raise CompileError(errors)
    return TraceType(tuple(sorted(fields)))


def check_addresses(program: Program, library=None) -> Program:
    """Check every ``density`` equation's trace and observations against its model (and,
    given the ``library``, each family's supports against the model's)."""
    errors: list[Diagnostic] = []
    for fn in program.functions.values():
        producers = {v: e for e in walk(fn.body) for v in e.outs}
        _check_region(fn.body, program, errors, producers, library)
    if errors:
        cls = DataError if all(d.span is None for d in errors) else CompileError
        raise cls(errors)
    return program


def _drawn_at(trace, producers: dict, functions: dict[str, Function]) -> dict[str, Span | None]:
    """Where the program that made ``trace`` (a ``sim`` or ``generate``) draws each address."""
    eqn = producers.get(trace)
    if eqn is None or eqn.op not in ("sim", "generate"):
        return {}
    body = eqn.regions[0] if eqn.regions else functions[eqn.attrs["callee"]].body
    return {address: span for address, _, span in sites(body, functions)}


class _Mismatch:
    """Reports for one ``density``: each at the user's ``~`` where one is known, with
    notes at the other program's ``~`` and at the ``density`` call (often the stdlib's)."""

    def __init__(self, eqn, model_sites: dict, family_sites: dict, family: str | None,
                 errors: list[Diagnostic]):
        self.eqn, self.model_sites, self.family_sites = eqn, model_sites, family_sites
        self.model, self.family, self.errors = eqn.attrs["callee"], family, errors

    def report(self, message: str, address: str, help: str | None = None,
               family_first: bool = True) -> None:
        model_span = self.model_sites.get(address)
        family_span = self.family_sites.get(address)
        family = self.family or "the family"
        located = [(f"{family} draws '{address}' here", family_span),
                   (f"{self.model} draws '{address}' here", model_span)]
        if not family_first:
            located.reverse()
        located = [(text, span) for text, span in located if span is not None]
        if not located or self.family is None:  # a trace given as data: a data error
            self.errors.append(Diagnostic(message, self.eqn.span, help=help))
            return
        notes = [Note(text, span) for text, span in located[1:]]
        if self.eqn.span is not None:
            notes.append(Note(f"the trace is scored by {self.model} here", self.eqn.span))
        self.errors.append(Diagnostic(message, located[0][1], help=help, notes=tuple(notes)))


def _check_region(region: Region, program: Program, errors: list[Diagnostic],
                  producers: dict, library=None) -> None:
    for eqn in region.eqns:
        for sub in eqn.regions:
            _check_region(sub, program, errors, producers, library)
        if eqn.op == "generate":
            model = trace_type(eqn.regions[0], program.functions, eqn.span)
            for a, t in eqn.args[0].type.fields:
                want = model.field(a)
                if want is None:
                    errors.append(Diagnostic(f"the given trace has a value at '{a}', but "
                                             f"{eqn.attrs['callee']} draws no choice there", eqn.span,
                                             help=did_you_mean(a, model.addresses)))
                elif not _fits(t, want):
                    errors.append(Diagnostic(f"the given value at '{a}' has type {t!r}, but "
                                             f"{eqn.attrs['callee']} draws {want!r} there", eqn.span))
            continue
        if eqn.op != "density":
            continue
        callee = eqn.attrs["callee"]
        model = trace_type(eqn.regions[0], program.functions, eqn.span)
        given: TraceType = eqn.args[0].type
        observed = eqn.attrs["observed"]
        obs_types = {a: v.type for a, v in zip(observed, eqn.args[1:1 + len(observed)])}
        name = callee
        producer = producers.get(eqn.args[0])
        report = _Mismatch(eqn, {a: sp for a, _, sp in sites(eqn.regions[0], program.functions)},
                           _drawn_at(eqn.args[0], producers, program.functions),
                           producer.attrs.get("callee") if producer is not None else None,
                           errors)
        for a, t in obs_types.items():
            want = model.field(a)
            if want is None:
                errors.append(Diagnostic(
                    f"'{a}' is observed, but {name} draws no choice at that address", eqn.span,
                    help=did_you_mean(a, model.addresses)
                    or f"its addresses: {', '.join(model.addresses) or 'none'}"))
            elif not _fits(t, want):
                report.report(f"the observation of '{a}' has type {t!r}, but {name} draws "
                              f"{want!r} there", a, family_first=False)
        latent = [(a, t) for a, t in model.fields if a not in obs_types]
        have = dict(given.fields)
        family = report.family
        drawn = f" (drawn by {family})" if family else ""
        for a, t in latent:
            if a not in have:
                report.report(f"the trace has no value for '{a}', which {name} draws"
                              + (f" and {family} does not" if family else ""), a,
                              help="a trace given to density() must hold every unobserved choice",
                              family_first=False)
            elif not _fits(have[a], t):
                report.report(f"the trace's value at '{a}'{drawn} has type {have[a]!r}, but "
                              f"{name} draws {t!r} there", a)
        latent_names = {a for a, _ in latent}
        for a in have:
            if a not in latent_names:
                why = "it is observed" if a in obs_types else f"{name} draws no choice there"
                report.report(f"the trace has a value at '{a}'{drawn}, but {why}", a,
                              help=did_you_mean(a, latent_names))
        if library is not None and producer is not None and producer.op in ("sim", "generate"):
            body = (producer.regions[0] if producer.regions
                    else program.functions[producer.attrs["callee"]].body)
            _check_supports(report, site_eqns(eqn.regions[0], program.functions),
                            site_eqns(body, program.functions), latent_names, library)


def _support(eqn, library):
    """The support of a ``sample`` equation's distribution, None when it is not known."""
    row = library.distributions.get(eqn.attrs["dist"])
    form = tuple(eqn.attrs["form"])
    if row is None or not hasattr(row, "support_of"):
        return None
    try:
        return row.support_of(form, [a.value if isinstance(a, Lit) else a.type
                                     for a in eqn.args[:len(form)]])
    except Exception:  # a check that cannot decide says nothing
        return None


def _check_supports(report: "_Mismatch", model_sites, family_sites, latent: set,
                    library) -> None:
    """A family must draw each latent inside the model's support there: a ``normal``
    family for a ``halfnormal`` latent puts mass where the model has none (its log
    density is −∞ there). Only supports known when compiling are compared, and only
    ``F ⊄ M`` is reported (a lognormal or a uniform inside the support is fine)."""
    model = {a: e for a, _, e, _ in model_sites}
    for a, _, fe, _ in family_sites:
        me = model.get(a)
        if me is None or a not in latent:
            continue
        f, m = _support(fe, library), _support(me, library)
        if f is None or m is None or f.within(m) is not False:
            continue
        report.report(f"{report.family} draws '{a}' from {fe.attrs['dist']} ({f.words}), but "
                      f"{report.model}'s {me.attrs['dist']} draws it on {m.words}", a,
                      help=f"a family must put its mass inside the model's support: draw '{a}' "
                           f"from a distribution on {m.words}, or use auto_normal(p), which "
                           "maps each latent onto its support")


def _fits(given, want) -> bool:
    if not isinstance(given, ArrayType) or not isinstance(want, ArrayType):
        return False
    if given.shape != want.shape:
        return False
    # Numbers fit any numeric choice (0/1 floats for a bernoulli, ints for a normal);
    # the expansion casts them to the choice's dtype.
    return given.dtype == want.dtype or (given.dtype != "bool" and want.dtype != "bool")
