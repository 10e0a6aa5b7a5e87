"""The ``adev`` pass: settle and check each random choice's gradient estimator.

Run on an objective after expansion. Each ``draw`` inside ``expect`` keeps
the estimator its source chose (``with enum``) or its distribution's
default, unless an override from Python (``obj.with_estimators({"z*":
"reinforce"})``, patterns as in ``fnmatch``, matched against addresses)
replaces it. Estimator names come from the library's registry (``library.estimators``), and
soundness from the distribution's row (``unsound_reason``). Checks, all
reported together:

- the estimator is sound for the distribution (no reparam of a discrete
  choice, no enumeration of an infinite support);
- every override pattern matches at least one choice;
- estimators that evaluate the continuation more than once (enum, mvd) are
  not left inside a ``for`` loop, where the continuation is not available
  (the ``unroll`` pass, run before this one, unrolls such loops);
- an enumerated choice has a support known at compile time (the row's
  ``support_size``: a ``binomial`` needs a literal ``total_count``);
- a choice drawn by ``rsim(g)`` is reparameterised (it must not be overridden,
  and its distribution must have a reparameterisation);
- no choice is drawn outside ``expect`` (a ``fn`` that simulates, called
  from an objective outside ``expect``, would have no estimator);
- a learned REINFORCE baseline reads only parameters used nowhere else in the
  objective (``check_baselines``: fitting it would bias their gradients).

    >>> # draw[dist=bernoulli, estimator=enum]   with {"b": "reinforce"}   ->   estimator=reinforce
"""

from __future__ import annotations

import fnmatch

from ..diagnostics import CompileError, DataError, Diagnostic, did_you_mean, error
from ..ir import Eqn, Function, Lit, Program, Region, Var, walk


def unsound_estimator_message(name: str, dist_name: str, address: str, dist) -> str:
    """Why estimator ``name`` cannot estimate the gradient of the choice at ``address``
    (the reason is the distribution row's ``unsound_reason``)."""
    return (f"estimator '{name}' is unsound for the {dist_name} at address '{address}': "
            f"{dist.unsound_reason(name)}")


def _support_problem(dist, eqn: Eqn):
    """The row's reason (``SupportNotStatic``: ``needs``, ``help``) why the support of the
    draw ``eqn`` is not known at compile time, or None when it is."""
    args = [a.value if isinstance(a, Lit) else a.type for a in eqn.args[:len(eqn.attrs["form"])]]
    try:
        dist.support_size(eqn.attrs["form"], args)
    except ValueError as problem:
        return problem
    return None


def overridden(attrs: dict, overrides: dict[str, str]) -> tuple[str, str, list[str]]:
    """The estimator of the draw with ``attrs`` before rsim's requirement: its own (the
    source's, or its distribution's default) unless override patterns match its address
    (the last one wins); with the words that say so in messages, and the patterns matched.

        >>> overridden({"address": "b", "estimator": "enum"}, {"b*": "mvd"})
        ('mvd', " (chosen by the override {'b*': 'mvd'})", ['b*'])
    """
    name, chosen_by, patterns = attrs["estimator"], "", []
    for pattern, override in overrides.items():
        if fnmatch.fnmatchcase(attrs["address"], pattern):
            patterns.append(pattern)
            name = override
            chosen_by = f" (chosen by the override {{{pattern!r}: {override!r}}})"
    return name, chosen_by, patterns


def settled_estimator(attrs: dict, overrides: dict[str, str]) -> str:
    """The estimator the adev pass settles for the draw with ``attrs`` (rsim's requirement
    wins over an override; the adev pass reports the conflict)."""
    return attrs.get("require") or overridden(attrs, overrides)[0]


def assign_estimators(program: Program, library, overrides: dict[str, str] | None = None) -> Program:
    overrides = dict(overrides or {})
    errors: list[Diagnostic] = []
    names = tuple(library.estimators)
    for pattern, name in overrides.items():
        if name not in names:
            errors.append(Diagnostic(f"unknown estimator '{name}' for pattern '{pattern}'",
                                     help=did_you_mean(name, names)
                                     or "estimators: " + ", ".join(names)))
    if errors:
        raise DataError(errors)
    matched: set[str] = set()
    addresses: list[str] = []
    functions = {}
    for fname, fn in program.functions.items():
        body = _region(fn.body, library, overrides, matched, addresses, errors, False, False)
        functions[fname] = Function(fn.name, body, fn.kind, fn.span)
    for pattern in overrides:
        if pattern not in matched:
            errors.append(Diagnostic(f"no random choice matches the estimator pattern '{pattern}'",
                                     help=f"the choices are: {', '.join(sorted(set(addresses))) or 'none'}"))
    if errors:
        cls = DataError if all(d.span is None for d in errors) else CompileError
        raise cls(errors)
    program = Program(functions, program.entry, program.params, program.data_scale)
    check_baselines(program)
    return program


def _region(region: Region, library, overrides, matched, addresses, errors, in_expect, in_loop,
            in_plate=False, in_outer_loop=False) -> Region:
    eqns = []
    for e in region.eqns:
        attrs = e.attrs
        draws = e.regions and any(x.op == "draw" for r in e.regions for x in walk(r))
        if e.op == "expect" and draws and in_outer_loop:
            errors.append(Diagnostic(
                "an 'expect' inside a for loop is not supported yet", e.span,
                help="put the loop inside the expect, and sum what it computes: "
                     "expect { ... ; return sum(v) }"))
        elif e.op == "scan" and draws and in_expect and in_plate:
            from .unroll import MAX_STEPS  # (unroll imports this module)

            errors.append(Diagnostic(
                "a for loop with random choices inside a plate, inside 'expect', is unrolled "
                f"(up to {MAX_STEPS} steps), and this one has {e.attrs['length']}", e.span,
                help="put the plate inside the loop, one batched choice per step: "
                "for t in n { plate i in m { ... } }"))
        if e.op == "draw" and not in_expect:
            errors.append(Diagnostic(
                f"the random choice at '{attrs['address']}' is drawn outside 'expect', so the "
                "objective has no gradient estimator for it", e.span,
                help="an objective draws (directly, or through sim in a fn it calls) only "
                     "inside expect { ... }"))
        if e.op == "draw" and in_expect:
            address = attrs["address"]
            addresses.append(address)
            name, chosen_by, patterns = overridden(attrs, overrides)
            matched.update(patterns)
            required = attrs.get("require")
            if required and name != required:
                if chosen_by:
                    errors.append(Diagnostic(
                        f"the choice at address '{address}' is drawn by rsim(), which needs "
                        f"estimator '{required}', not '{name}'{chosen_by}", e.span,
                        help="leave this address out of the override, or use an objective "
                             "written with sim()"))
                chosen_by, name = " (required by rsim())", required
            dist = library.distributions[attrs["dist"]]
            if name not in dist.estimators:
                errors.append(Diagnostic(unsound_estimator_message(name, attrs["dist"], address, dist)
                                         + chosen_by, e.span, help=(
                                             "rsim() draws only reparameterisable choices: use an "
                                             "objective written with sim() (iwelbo, not dreg)"
                                             if required else "sound estimators here: "
                                             + ", ".join(sorted(dist.estimators)))))
            elif in_loop and not in_plate and name not in library.estimator_tail:
                # The unroll pass, run before this one, unrolls every such loop (or says why
                # not); one left here was never given to it.
                errors.append(Diagnostic(
                    f"estimator '{name}' at address '{address}'{chosen_by} needs the rest of the "
                    "expectation, and this for loop was not unrolled", e.span,
                    help="run the unroll pass before the adev pass (compiler/passes/unroll.py)"))
            elif name == "enum" and (problem := _support_problem(dist, e)) is not None:
                needs = getattr(problem, "needs", str(problem))
                errors.append(Diagnostic(
                    f"enumerating the {attrs['dist']} at address '{address}'{chosen_by} needs {needs}",
                    e.span, help=getattr(problem, "help", "use reinforce")))
            if name != attrs["estimator"]:
                attrs = dict(attrs, estimator=name)
        regions = [_region(r, library, overrides, matched, addresses, errors,
                           in_expect or e.op == "expect",
                           in_loop or (e.op == "scan" and in_expect),
                           # An expect's block runs once per element of its plates.
                           (in_plate or e.op == "plate") and e.op != "expect",
                           in_outer_loop or (e.op == "scan" and not in_expect)) for r in e.regions]
        eqns.append(Eqn(e.op, e.outs, e.args, attrs, regions, e.span))
    return Region(region.params, eqns, region.outs)


# ---------------------------------------------------------------- learned baselines


def check_baselines(program: Program) -> None:
    """Reject a learned baseline that reads a parameter the objective also uses elsewhere.

    REINFORCE fits a learned baseline b by adding (ℓ − b)·ḃ, the gradient of
    −(ℓ − b)²/2, to the gradient of b's parameters; if those parameters also enter the
    objective otherwise, that term would bias their gradient. Found on the IR: which
    parameters each value depends on (differentiably: ``stop_gradient`` cuts it, so a
    baseline network may read an LSTM's detached state), and which values feed only
    baselines.
    """
    body = program.functions[program.entry].body
    deps: dict = {}  # Var -> frozenset of the parameter paths it depends on

    def dep_of(a):
        return deps.get(a, frozenset()) if isinstance(a, Var) else frozenset()

    def forward(region: Region, outer: frozenset = frozenset()):
        for p in region.params:
            deps[p] = deps.get(p, frozenset()) | outer
        for e in region.eqns:
            # A draw's value does not depend on its baseline.
            args = e.args[:len(e.attrs["form"])] if e.op == "draw" else e.args
            d = frozenset().union(*[dep_of(a) for a in args])
            if e.op == "fn" and e.attrs["name"] == "stop_gradient":
                d = frozenset()  # no tangent flows through it to the parameters it read
            if e.op == "param" and not e.attrs.get("stop", False):
                d = d | {e.attrs["path"]}
            for r in e.regions:
                forward(r, d)
                d = d.union(*[dep_of(o) for o in r.outs])
            for o in e.outs:
                deps[o] = d

    forward(body)
    baselines = [(a, e) for e in walk(body) if e.op == "draw"
                 for a in e.args[len(e.attrs["form"]):] if dep_of(a)]
    if not baselines:
        return
    only_baseline = _feeding_only_baselines(body)
    used_elsewhere = set(dep_of(body.outs[0]))
    for e in walk(body):
        if e.op != "draw" and e.outs and all(o in only_baseline for o in e.outs):
            continue
        args = e.args[:len(e.attrs["form"])] if e.op == "draw" else e.args
        for a in list(args) + [o for r in e.regions for o in r.outs]:
            used_elsewhere |= dep_of(a)
    for a, e in baselines:
        shared = sorted(dep_of(a) & used_elsewhere)
        if shared:
            raise error(
                f"the learned baseline of this choice reads the parameter {shared[0]}, which "
                "the objective also uses elsewhere: fitting the baseline would bias that "
                "parameter's gradient", e.span,
                help="give the baseline a parameter of its own (param b: real = 0.0, then "
                     "reinforce(baseline=b)), or use a constant")


def _feeding_only_baselines(body: Region) -> set:
    """Variables whose only uses, transitively, are as a draw's baseline."""
    uses: dict = {}
    for e in walk(body):
        n_dist = len(e.attrs["form"]) if e.op == "draw" else len(e.args)
        for i, a in enumerate(e.args):
            if isinstance(a, Var):
                uses.setdefault(a, []).append(None if i >= n_dist else e)
        for r in e.regions:
            for o in r.outs:
                if isinstance(o, Var):
                    uses.setdefault(o, []).append(e)
    for o in body.outs:
        if isinstance(o, Var):
            uses.setdefault(o, []).append(body)  # the value itself: never only a baseline
    only: set = set()
    changed = True
    while changed:
        changed = False
        for v, us in uses.items():
            if v not in only and all(u is None or (isinstance(u, Eqn) and u.op != "draw" and u.outs
                                                   and all(o in only for o in u.outs)) for u in us):
                only.add(v)
                changed = True
    return only

