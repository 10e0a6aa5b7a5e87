"""Exact summation in for loops: the forward algorithm, and loop-independent code motion.

The ``scan`` rule of compiler/summation.py. A loop whose carried value is a
choice summed in its step (``z = 0; for t in T { z ~ categorical(logits=A[z])
… }``) becomes a ``scan`` over α, the log probability of each of the K states
and the data so far: α'(z) = logsumexp_c(α(c) + ℓ_t(c, z)) + ℓ_t(z), where
ℓ_t(c, z) holds the step's terms that read the previous state c (the
transition) and ℓ_t(z) the others (the emission). :func:`hoist` then moves
what reads no carry out of the loop: the transition table before it, the
emissions into one plate over the steps, as a hand-written forward algorithm
computes them. Cost T·K², linear in T.

    >>> # z = 0; for t in T { z ~ categorical(logits=A[z]); y ~ normal(mu[z], 1.0) }   becomes
    >>> # table = plate c { plate z { logpdf[categorical](z, A[c]) } }           (K x K, once)
    >>> # em = plate t (y) { plate z { logpdf[normal](y_t, mu[z], 1.0) } }        (T x K, at once)
    >>> # alpha = scan (alpha0, em) { logsumexp(plate c (alpha, table) { alpha_c + table_c },
    >>> #                                       axis=0) + em_t }
"""

from __future__ import annotations

from .diagnostics import error
from .ir import Atom, Eqn, Lit, Region, Var, stacked
from .summation import (Context, Summation, address_of, cast, close_loop, emit, per_element,
                        reads_all, total)
from .types import BOOL, INT, REAL, ArrayType

NEG_INF = Lit(float("-inf"), REAL)


def scan_rule(s: Summation, e: Eqn, ctx: Context, out: list[Eqn]) -> list:
    """A for loop: the forward algorithm when a carried value depends on a summed choice
    of its step, else each step summed on its own."""
    region = e.regions[0]
    c = e.attrs["carries"]
    roots = s.roots(region.eqns, ctx)
    deps = s.partition(region.eqns, roots).deps if roots else {}
    state = [j for j in range(c) if isinstance(region.outs[j], Var) and deps.get(region.outs[j])]
    if not state:  # the carried values do not depend on the step's summed choices
        return per_element(s, e, ctx, out, "loop", c)
    return _forward(s, e, ctx, out, state, deps)


def _forward(s: Summation, e: Eqn, ctx: Context, out: list[Eqn], state: list[int],
             deps: dict) -> list:
    """The forward algorithm: a loop whose carried value is a choice summed in its step."""
    region = e.regions[0]
    c = e.attrs["carries"]
    t_param, carry_params = region.params[0], region.params[1:1 + c]
    names = [region.outs[j].hint or carry_params[j].hint for j in state]
    if len(state) > 1:
        raise error("marginal(..., exact=true): this loop carries several values that depend on "
                    f"summed choices ({', '.join(repr(x) for x in names)}); the forward "
                    "algorithm sums one carried discrete state", e.span,
                    help="carry one state (encode several as one categorical), or keep some "
                         "of them (add them to keep=[...])")
    j = state[0]
    choice = _drawn_by(region, region.outs[j])
    if choice is None or choice.attrs["address"] not in s.summed:
        root = sorted(address_of(s.body, r) for r in deps[region.outs[j]])[0]
        raise error(f"marginal(..., exact=true): the loop carries '{names[0]}', which depends "
                    f"on the summed choice '{root}'; the forward algorithm needs the carried "
                    f"value to be the choice itself ({carry_params[j].hint} ~ ...)", e.span,
                    help="carry the discrete state and compute the rest from it in each step, "
                         "or keep the choice (add it to keep=[...])")
    k = s.support(choice)
    state_param = carry_params[j]
    part = s.partition(region.eqns, s.roots(region.eqns, ctx) + [state_param],
                       linked=(choice.outs[0], state_param))
    group = next(g for g in part.groups if choice in g)
    for jj, r in enumerate(region.outs):
        if jj != j and (jj < c or e.outs[jj] in s.used):
            s.leaked(part.deps, r, e.outs[jj], "loop", e.span)
    if e.outs[j] in s.used:
        s.leaked(deps, region.outs[j], e.outs[j], "loop", e.span)

    args = [ctx.sub(a) for a in e.args]
    init = args[j]
    others = [jj for jj in range(c) if jj != j]
    # α before the first step: all its mass on the initial state when it is a literal among
    # the K states; else on slot 0, which step 0 reads as the initial value, whatever it is.
    in_range = isinstance(init, Lit) and init.value in range(k)
    alpha0_out: list[Eqn] = []
    slot = Var(INT, "c")
    first = emit(alpha0_out, "fn", BOOL, [slot, init if in_range else Lit(0, INT)],
                  {"name": "eq"}, e.span)
    a0 = emit(alpha0_out, "fn", REAL, [first, Lit(0.0, REAL), NEG_INF], {"name": "where"},
               e.span, "alpha")
    alpha0 = Var(stacked(REAL, k), "alpha")
    out.append(Eqn("plate", [alpha0], [], {"size": k}, [Region([slot], alpha0_out, [a0])], e.span))

    t = Var(INT, t_param.hint)
    alpha = Var(stacked(REAL, k), "alpha")
    other_params = [Var(carry_params[jj].type, carry_params[jj].hint) for jj in others]
    xs_params = [Var(p.type, p.hint) for p in region.params[1 + c:]]
    params = [t, alpha] + other_params + xs_params
    new_args = [alpha0] + [args[jj] for jj in others] + args[c:]
    inner = ctx.inner()
    inner.subst[t_param] = t
    inner.subst.update(zip([carry_params[jj] for jj in others], other_params))
    inner.subst.update(zip(region.params[1 + c:], xs_params))
    inner.given = s.sliced(region, ctx, new_args, params)
    step_out: list[Eqn] = []
    terms = s.each(part.independent, inner, step_out)
    for g in part.groups:
        if g is not group:
            terms.append(s.sum_over(g[0], g, inner, step_out))
    alpha_new = _transition(s, choice, group, state_param, None if in_range else init, t,
                            alpha, k, inner, step_out, e.span)
    outs, yields = [Var(stacked(REAL, k), "alpha")], [alpha_new]
    for jj in others:
        new = Var(e.outs[jj].type, e.outs[jj].hint)
        ctx.subst[e.outs[jj]] = new
        outs.append(new)
        yields.append(inner.sub(region.outs[jj]))
    for jj in range(c, len(e.outs)):
        if e.outs[jj] in s.used:
            new = Var(e.outs[jj].type, e.outs[jj].hint)
            ctx.subst[e.outs[jj]] = new
            outs.append(new)
            yields.append(inner.sub(region.outs[jj]))
    attrs = {**e.attrs, "carries": 1 + len(others)}
    step_terms = close_loop(e, attrs, outs, yields, new_args, params, step_out, terms, out)
    final = emit(out, "fn", REAL, [outs[0]], {"name": "logsumexp", "axis": None}, e.span, "lp")
    return [final] + step_terms


def _transition(s: Summation, choice: Eqn, group: list[Eqn], state_param: Var, init: Atom,
                t: Var, alpha: Var, k: int, ctx: Context, out: list[Eqn], span) -> Var:
    """α'(z) = logsumexp_c(α(c) + ℓ(c, z)) + ℓ(z), with plates over the previous state c
    (outer) and the new state z: ℓ(c, z) holds the step's terms that read c, ℓ(z) the others
    (the emission), so that each is computed where it can be hoisted out of the loop. With
    ``init`` None, c is the previous state itself; else step 0 reads ``init`` for every c.

    The table is laid out [c, z], as a hand-written forward algorithm holds log A: the
    categorical's logits ``A[c]`` are then a row per c, its density at every z one
    ``log_softmax`` (passes/plate_reads.py), not a gather; and the step is
    ``logsumexp(α[:, None] + table, 0)``."""
    reads_c, free = _split_by_state(s, group, choice, state_param)
    inner = ctx.inner(joint=ctx.joint * k, summing=ctx.summing + (choice.attrs["address"],))

    emission = None
    if free:
        z = Var(INT, "z")
        e_out: list[Eqn] = []
        e_ctx = inner.inner()
        e_ctx.subst[choice.outs[0]] = e_ctx.fixed[choice.outs[0]] = cast(
            e_out, z, choice.outs[0].type.dtype, span)
        terms, _ = s.block(free, e_ctx, e_out)
        emission = Var(stacked(REAL, k), "lp")
        out.append(Eqn("plate", [emission], [], {"size": k},
                       [Region([z], e_out, [total(terms, e_out, span)])], span))
    # ℓ(c, z) for every c and z: its own plates, so that it is hoisted when it reads no carry.
    prev = Var(INT, "c")
    c_out: list[Eqn] = []
    cv = prev
    if init is not None:
        at_start = emit(c_out, "fn", BOOL, [t, Lit(0, INT)], {"name": "eq"}, span)
        cv = emit(c_out, "fn", INT, [at_start, init, prev], {"name": "where"}, span,
                   state_param.hint)
    c_value = cast(c_out, cv, state_param.type.dtype, span)
    z = Var(INT, "z")
    z_out: list[Eqn] = []
    z_ctx = inner.inner()
    z_ctx.fixed[choice.outs[0]] = cast(z_out, z, choice.outs[0].type.dtype, span)
    z_ctx.subst[state_param] = c_value
    terms, _ = s.block(reads_c, z_ctx, z_out)
    lp = total(terms, z_out, span)
    row = Var(stacked(REAL, k), "lp")
    c_out.append(Eqn("plate", [row], [], {"size": k}, [Region([z], z_out, [lp])], span))
    table = Var(ArrayType("float32", (k, k)), "lp")
    out.append(Eqn("plate", [table], [], {"size": k}, [Region([prev], c_out, [row])], span))
    # α(c) + ℓ(c, z) for every c and z, then the sum over c.
    a_c, row_c, l_cz = Var(REAL, "alpha"), Var(stacked(REAL, k), "lp"), Var(REAL, "lp")
    zz_out: list[Eqn] = []
    both = emit(zz_out, "fn", REAL, [a_c, l_cz], {"name": "add"}, span, "lp")
    joint_row = Var(stacked(REAL, k), "lp")
    cc_out = [Eqn("plate", [joint_row], [row_c], {"size": k},
                  [Region([Var(INT, "z"), l_cz], zz_out, [both])], span)]
    joint = Var(ArrayType("float32", (k, k)), "lp")
    out.append(Eqn("plate", [joint], [alpha, table], {"size": k},
                   [Region([Var(INT, "c"), a_c, row_c], cc_out, [joint_row])], span))
    alpha_new = emit(out, "fn", stacked(REAL, k), [joint], {"name": "logsumexp", "axis": 0},
                     span, "alpha")
    if emission is not None:
        alpha_new = emit(out, "fn", stacked(REAL, k), [alpha_new, emission], {"name": "add"},
                         span, "alpha")
    return alpha_new


def _split_by_state(s: Summation, group: list[Eqn], choice: Eqn, state: Var):
    """The state group's equations that read the previous state (through anything but the
    new state's value, which both parts know), and the others, when nothing of the first
    reads the second; else (the whole group, [])."""
    tainted = {state}
    reads_c, free = [], []
    for e in group:
        if e is choice or (s.reads(e) & tainted):
            reads_c.append(e)
            if e is not choice:
                tainted.update(e.outs)
        else:
            free.append(e)
    defined_free = {o for e in free for o in e.outs}
    if any(s.reads(e) & defined_free for e in reads_c):
        return group, []
    return reads_c, free


def hoist(e: Eqn) -> list[Eqn]:
    """A pure ``scan`` with its body's loop-independent equations moved out: those reading
    no carry and no step (loop-invariant, as the transition table of a forward step) go
    before it as they are; those reading the step's index or inputs but no carry (an
    emission's log density) go into a ``plate`` over the steps before it, whose stacked
    values enter the scan as inputs. One vectorised pass replaces T sequential ones.

    Every equation here is pure, so moving it keeps the meaning."""
    region = e.regions[0]
    n, c = e.attrs["length"], e.attrs["carries"]
    carried = set(region.params[1:1 + c])
    stepwise = {region.params[0]} | set(region.params[1 + c:])
    invariant, per_step, rest = [], [], []
    for eq in region.eqns:
        r = reads_all(eq)
        if r & carried:
            rest.append(eq)
            carried.update(eq.outs)
        elif r & stepwise:
            per_step.append(eq)
            stepwise.update(eq.outs)
        else:
            invariant.append(eq)
    if n == 0 or not (invariant or per_step):
        return [e]
    out = list(invariant)
    read_later = {v for eq in rest for v in reads_all(eq)} | {
        o for o in region.outs if isinstance(o, Var)}
    needed = [v for eq in per_step for v in eq.outs if v in read_later]
    # Inputs only the moved equations read no longer enter the loop.
    kept = [j for j, p in enumerate(region.params[1 + c:]) if p in read_later]
    params = region.params[:1 + c] + [region.params[1 + c + j] for j in kept]
    args = list(e.args[:c]) + [e.args[c + j] for j in kept]
    if needed:
        from .passes.inline import copy_region

        index = Var(INT, region.params[0].hint)
        xs = [Var(p.type, p.hint) for p in region.params[1 + c:]]
        subst = dict(zip(region.params[1 + c:], xs))
        subst[region.params[0]] = index
        body = copy_region(Region([], per_step, needed), subst)
        values = [Var(stacked(v.type, n), v.hint) for v in needed]
        out.append(Eqn("plate", values, e.args[c:], {"size": n},
                       [Region([index] + xs, body.eqns, body.outs)], e.span))
        params += needed  # each now enters the loop as its step's slice
        args += values
        if c == 0 and not rest and all(y in needed for y in region.outs):
            # Nothing is left to run in order: the loop was a plate.
            stacked_of = dict(zip(needed, values))
            out.extend(Eqn("fn", [o], [stacked_of[y]], {"name": "identity"}, [], e.span)
                       for o, y in zip(e.outs, region.outs))
            return out
    out.append(Eqn("scan", e.outs, args, e.attrs, [Region(params, rest, region.outs)], e.span))
    return out


def _drawn_by(region: Region, v: Atom) -> Eqn | None:
    """The sample equation of ``region`` whose value ``v`` is (through identities)."""
    by_out = {o: e for e in region.eqns for o in e.outs}
    while isinstance(v, Var) and v in by_out:
        e = by_out[v]
        if e.op == "sample":
            return e
        if e.op == "fn" and e.attrs.get("name") == "identity":
            v = e.args[0]
            continue
        return None
    return None


