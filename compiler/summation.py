"""Exact summation of a model's finite-support choices: the IR of log Σ_u g(u, x).

``marginal(g, keep=[…], exact=true)`` (compiler/combinators.py) has as its
density the log of g's joint summed over every choice not kept. This module
rewrites g's (inlined) body into pure IR that computes it, with the kept
choices read from a trace, using only ops every later pass already knows:
``trace_get``, ``logpdf``, ``fn`` (``logsumexp``, ``add``, ``where``),
``plate`` and ``scan``. So ``ppl ir --after lower`` shows the algorithm, and
ADEV differentiates it as pure code (no estimator: nothing is sampled).

The sum follows the program's structure, never its joint support:

- **a block** (a body, a plate's or a loop's): its summed choices are split
  into *components*, the choices linked by some equation reading both
  (transitively); equations reading none are emitted once, outside any sum,
  and each component is one sum: a ``plate`` over the first choice's support
  values, holding the equations that read the component, the rest of the
  component summed recursively inside it (given the first choice, it may
  split again). Its cost is the product of the supports along that nesting,
  limited to :data:`JOINT_LIMIT` values;
- **a plate** sums its own choices per element (cost N·K, never K^N), nested
  plates too. Its values used after it must not depend on them;
- **a for loop** whose carried value is a summed choice drawn in the step
  (``z = 0; for t in T { z ~ categorical(logits=A[z]); … }``) runs the
  forward algorithm: a ``scan`` carrying α, the log probability of each of
  the K states and the data so far, α'(z) = logsumexp_c(α(c) + ℓ_t(c, z)),
  ℓ_t the log density of step t with carried state c and new state z (cost
  T·K²). Step 0 reads the loop's initial value wherever c is read, so any
  initial value works. A step's choices that do not reach the carry are
  summed per step.

Anything else (a plate's value that depends on a choice summed inside it, a
loop carrying another value computed from a summed choice, a continuous or
infinite-support choice among those summed, an array of choices drawn at
once) is a compile error naming the choice.

Every op of a model body has one rule in :data:`RULES`: ``rule(summation,
eqn, context, out) -> log-density terms``, emitting into ``out``.

    >>> # gen mix(N) { mu ~ normal(0, 1); plate i in N { z ~ bernoulli(0.3); x ~ normal(mu*z, 1) } }
    >>> # density(marginal(mix(N), keep=["mu", "x"], exact=true), t) lowers to
    >>> #   lp_mu = logpdf[normal](mu, 0, 1)
    >>> #   lp_i = plate[size=N](x) { |i, x_i| lp_k = plate[size=2] { |k| logpdf[bernoulli](k, 0.3)
    >>> #                                   + logpdf[normal](x_i, mu*k, 1) }; yield logsumexp(lp_k) }
    >>> #   lp = lp_mu + sum(lp_i)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .diagnostics import error
from .ir import Atom, Eqn, Lit, Region, Var, stacked, walk
from .types import BOOL, INT, REAL, ArrayType

# The most joint values one sum may enumerate (the product of the supports of the choices
# summed together, nested): beyond it the program is rejected, since its cost would be that
# many evaluations of the model. Choices per plate element and per loop step do not multiply.
JOINT_LIMIT = 4096

NEG_INF = Lit(float("-inf"), REAL)


@dataclass
class Context:
    """Where a block is being rewritten: ``subst`` (model variables -> emitted atoms),
    ``given`` (kept addresses -> their values here, sliced by the enclosing plates and
    loops), ``fixed`` (summed choices -> the support value an enclosing sum gives them),
    ``joint`` (the product of the supports summed around) and ``summing`` (their addresses)."""

    subst: dict = field(default_factory=dict)
    given: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    joint: int = 1
    summing: tuple = ()

    def inner(self, **changes) -> "Context":
        c = Context(dict(self.subst), dict(self.given), dict(self.fixed), self.joint,
                    self.summing)
        for k, v in changes.items():
            setattr(c, k, v)
        return c

    def sub(self, a: Atom) -> Atom:
        return a if isinstance(a, Lit) else self.subst.get(a, a)


@dataclass
class Partition:
    """A block's equations split by the summed roots they read: ``independent`` (none),
    ``groups`` (one list per component, in order), ``deps`` (variable -> roots it reads)."""

    independent: list
    groups: list
    deps: dict


class Summation:
    """The rewriting of one model body into its log marginal (see the module docstring)."""

    def __init__(self, library, body: Region, summed: frozenset, detached: bool, span):
        self.library = library
        self.body = body
        self.summed = summed
        self.detached = detached
        self.span = span
        self.used = _used(body)
        self._reads: dict[int, set] = {}

    # ---------------------------------------------------------------- entry

    def log_marginal(self, given: Var, args: list, site_types: dict) -> tuple[list[Eqn], Atom]:
        """The equations computing log Σ_u g(u, x) and its atom, x read from ``given``."""
        self.check_choices(self.body)
        out: list[Eqn] = []
        ctx = Context({p: a for p, a in zip(self.body.params, args)})
        for address, want in sorted(site_types.items()):
            if address in self.summed:
                continue
            have = given.type.field(address)
            if have is None or have.shape != want.shape:
                raise error(f"the kept value at '{address}' has type {have!r}, but the model "
                            f"draws {want!r} there", self.span)
            v = _emit(out, "trace_get", have, [given], {"address": address}, self.span,
                      address.replace("/", "_"))
            ctx.given[address] = _cast(out, v, want.dtype, self.span)
        terms, _ = self.block(self.body.eqns, ctx, out)
        return out, _total(terms, out, self.span)

    def check_choices(self, region: Region, where: str = "") -> None:
        """Every summed choice can be summed: discrete, finite, one value, not under a branch."""
        for e in region.eqns:
            if e.op == "sample" and e.attrs["address"] in self.summed:
                self.support(e)
                if where:
                    raise error(f"marginal(..., exact=true) sums '{e.attrs['address']}' out, "
                                f"but it is drawn {where}", e.span,
                                help="keep it (add it to keep=[...])")
                if e.outs[0].type.shape != ():
                    raise error(f"marginal(..., exact=true) sums '{e.attrs['address']}' out, "
                                f"but it is an array of {e.outs[0].type.size} choices drawn at "
                                f"once ({e.outs[0].type!r}); exact summation sums one choice "
                                "per plate element", e.span,
                                help="draw it inside a plate (plate i in n { z ~ ... }), so "
                                     "each element is summed on its own")
            elif e.op in ("plate", "scan"):
                self.check_choices(e.regions[0], where)
            elif e.op == "cond":
                for r in e.regions:
                    self.check_choices(r, "under a traced condition (if)")
                    if any(x.op == "factor" for x in walk(r)):
                        raise error("marginal(..., exact=true): a factor under a traced "
                                    "condition (if) is not supported in an exact marginal",
                                    e.span, help="add where(cond, a, b) with factor outside "
                                                 "the if")
            elif e.op in ("sim", "generate"):
                raise error(f"marginal(..., exact=true): the model simulates "
                            f"{e.attrs.get('callee', 'a generative function')} inside its body; "
                            "those draws are not choices of its trace and cannot be summed",
                            e.span)

    def support(self, e: Eqn) -> int:
        """The number of values of the summed choice ``e``, or a compile error saying why not."""
        address, name = e.attrs["address"], e.attrs["dist"]
        dist = self.library.distributions[name]
        why = None
        if not dist.discrete:
            why = f"it is continuous ({name}): exact summation needs a finite support"
        else:
            try:
                size = dist.support_size(e.attrs["form"], [
                    a.value if isinstance(a, Lit) else a.type
                    for a in e.args[:len(e.attrs["form"])]])
            except ValueError as ex:
                raise error(f"marginal(..., exact=true) cannot sum '{address}' out: {ex}",
                            e.span, help="make its support known when the program is compiled, "
                                         f"or keep it (keep=[..., \"{address}\"])") from None
            if size is None:
                why = f"its support is infinite ({name}): exact summation needs a finite one"
        if why:
            raise error(f"marginal(..., exact=true) sums '{address}' out, but {why}", e.span,
                        help=f"keep it (keep=[..., \"{address}\"]), or integrate it out by "
                             "importance sampling (exact=false, particles=m)")
        return size

    # ---------------------------------------------------------------- blocks

    def reads(self, e: Eqn) -> set:
        """Every variable ``e`` reads, its regions' free variables included."""
        key = id(e)
        if key not in self._reads:
            self._reads[key] = _reads_all(e)
        return self._reads[key]

    def roots(self, eqns: list[Eqn], ctx: Context) -> list[Var]:
        return [e.outs[0] for e in eqns if e.op == "sample"
                and e.attrs["address"] in self.summed and e.outs[0] not in ctx.fixed]

    def partition(self, eqns: list[Eqn], roots: list[Var], linked: tuple = ()) -> Partition:
        """Split ``eqns`` into those reading no root and one group per component of roots
        read together (``linked``: roots in one component from the start)."""
        parent = {r: r for r in roots}

        def find(r):
            while parent[r] is not r:
                r = parent[r]
            return r

        def union(rs):
            rs = [find(r) for r in rs]
            for r in rs[1:]:
                parent[r] = rs[0]

        union(list(linked))
        root_set = set(roots)
        deps: dict[Var, frozenset] = {r: frozenset([r]) for r in roots}
        each = []
        for e in eqns:
            d = set()
            for v in self.reads(e):
                d |= deps.get(v, frozenset())
            d |= {o for o in e.outs if o in root_set}
            for o in e.outs:
                deps[o] = frozenset(d)
            union(list(d))
            each.append(d)
        independent, groups, order = [], {}, []
        for e, d in zip(eqns, each):
            if not d:
                independent.append(e)
                continue
            g = find(next(iter(d)))
            if g not in groups:
                groups[g] = []
                order.append(g)
            groups[g].append(e)
        return Partition(independent, [groups[g] for g in order], deps)

    def block(self, eqns: list[Eqn], ctx: Context, out: list[Eqn]) -> tuple[list, dict]:
        """Rewrite a block: its log-density terms (emitted into ``out``) and what each
        variable's value depends on among the choices summed at this level."""
        roots = self.roots(eqns, ctx)
        if not roots:
            return self.each(eqns, ctx, out), {}
        part = self.partition(eqns, roots)
        terms = self.each(part.independent, ctx, out)
        for group in part.groups:
            terms.append(self.sum_over(group[0], group, ctx, out))
        return terms, part.deps

    def each(self, eqns: list[Eqn], ctx: Context, out: list[Eqn]) -> list:
        terms = []
        for e in eqns:
            terms.extend(RULES.get(e.op, _pure)(self, e, ctx, out))
        return terms

    def sum_over(self, choice: Eqn, group: list[Eqn], ctx: Context, out: list[Eqn]) -> Atom:
        """log Σ_k exp(the terms of ``group`` with ``choice`` = k): a plate over its support."""
        size = self.support(choice)
        address = choice.attrs["address"]
        joint = ctx.joint * size
        if joint > JOINT_LIMIT:
            names = ", ".join(f"'{a}'" for a in ctx.summing + (address,))
            raise error(f"marginal(..., exact=true) would sum {names} jointly: {joint} values, "
                        f"over the limit of {JOINT_LIMIT}", choice.span,
                        help="choices are summed jointly when one equation reads several of "
                             "them; choices drawn per plate element, or carried by a for loop "
                             "(the forward algorithm), are summed one element or step at a time")
        k = Var(INT, "k")
        inner_out: list[Eqn] = []
        value = _cast(inner_out, k, choice.outs[0].type.dtype, choice.span)
        inner = ctx.inner(joint=joint, summing=ctx.summing + (address,))
        inner.fixed[choice.outs[0]] = value
        terms, _ = self.block(group, inner, inner_out)
        lp = _total(terms, inner_out, choice.span)
        lps = Var(stacked(REAL, size), "lp")
        out.append(Eqn("plate", [lps], [], {"size": size},
                       [Region([k], inner_out, [lp])], choice.span))
        return _emit(out, "fn", REAL, [lps], {"name": "logsumexp", "axis": None}, choice.span,
                     "lp")

    def sliced(self, region: Region, ctx: Context, args: list, params: list) -> dict:
        """The kept values inside a plate or loop: each given address drawn in it enters as a
        mapped input (appended to ``args`` and ``params``), sliced along the leading axis."""
        given = {}
        for address in sorted(_addresses(region)):
            if address in ctx.given:
                outer = ctx.given[address]
                p = Var(ArrayType(outer.type.dtype, outer.type.shape[1:]),
                        address.replace("/", "_"))
                args.append(outer)
                params.append(p)
                given[address] = p
        return given

    def leaked(self, deps: dict, var: Atom, outer: Var, where: str, span) -> None:
        """A value used outside the plate or loop (``outer``, yielded as ``var`` inside)
        that depends on a choice summed inside it."""
        roots = deps.get(var) if isinstance(var, Var) else None
        if roots:
            address = next(iter(sorted(_address_of(self.body, r) for r in roots)))
            name = outer.hint or var.hint or "a value"
            raise error(f"marginal(..., exact=true): '{name}' is used after the {where}, but it "
                        f"depends on '{address}', which is summed out inside it", span,
                        help=f"use '{address}' only inside the {where}, or keep it "
                             "(add it to keep=[...])")


# -------------------------------------------------------------- rules


def _sample(s: Summation, e: Eqn, ctx: Context, out: list[Eqn]) -> list:
    x = e.outs[0]
    value = ctx.fixed[x] if x in ctx.fixed else ctx.given[e.attrs["address"]]
    ctx.subst[x] = value
    args = [ctx.sub(a) for a in e.args[:len(e.attrs["form"])]]
    return [_emit(out, "logpdf", REAL, [value] + args,
                  {"dist": e.attrs["dist"], "form": e.attrs["form"]}, e.span, "lp")]


def _factor(s: Summation, e: Eqn, ctx: Context, out: list[Eqn]) -> list:
    v = ctx.sub(e.args[0])
    if isinstance(v.type, ArrayType) and v.type.shape != ():
        v = _emit(out, "fn", REAL, [v], {"name": "sum", "axis": None}, e.span, "lp")
    return [v]


def _pure(s: Summation, e: Eqn, ctx: Context, out: list[Eqn]) -> list:
    from .passes.inline import copy_region

    args = [ctx.sub(a) for a in e.args]
    regions = [copy_region(r, ctx.subst) for r in e.regions]
    outs = []
    for v in e.outs:
        new = Var(v.type, v.hint)
        ctx.subst[v] = new
        outs.append(new)
    attrs = {**e.attrs, "stop": True} if e.op == "param" and s.detached else dict(e.attrs)
    out.append(Eqn(e.op, outs, args, attrs, regions, e.span))
    return []


def _plate(s: Summation, e: Eqn, ctx: Context, out: list[Eqn]) -> list:
    """A plate: each element's choices summed on their own (N·K, never K^N)."""
    return _per_element(s, e, ctx, out, "plate", 0)


def _scan(s: Summation, e: Eqn, ctx: Context, out: list[Eqn]) -> list:
    region = e.regions[0]
    c = e.attrs["carries"]
    roots = s.roots(region.eqns, ctx)
    deps = s.partition(region.eqns, roots).deps if roots else {}
    state = [j for j in range(c) if isinstance(region.outs[j], Var) and deps.get(region.outs[j])]
    if not state:  # the carried values do not depend on the step's summed choices
        return _per_element(s, e, ctx, out, "loop", c)
    return _forward(s, e, ctx, out, state, deps)


def _per_element(s: Summation, e: Eqn, ctx: Context, out: list[Eqn], where: str,
                 carries: int) -> list:
    """A plate, or a loop whose carries do not depend on its summed choices: each element's
    (step's) choices summed on its own; its values used after it must not depend on them."""
    region = e.regions[0]
    args = [ctx.sub(a) for a in e.args]
    params = [Var(p.type, p.hint) for p in region.params]
    inner = ctx.inner()
    inner.subst.update(zip(region.params, params))
    inner.given = s.sliced(region, ctx, args, params)
    inner_out: list[Eqn] = []
    terms, deps = s.block(region.eqns, inner, inner_out)
    outs, yields = [], []
    for j, (o, r) in enumerate(zip(e.outs, region.outs)):
        if j < carries or o in s.used:
            if o in s.used:
                s.leaked(deps, r, o, where, e.span)
            new = Var(o.type, o.hint)
            ctx.subst[o] = new
            outs.append(new)
            yields.append(inner.sub(r))
    return _close(e, dict(e.attrs), outs, yields, args, params, inner_out, terms, out)


def _close(e: Eqn, attrs: dict, outs, yields, args, params, inner_out, terms, out) -> list:
    """Emit the rewritten plate or scan (its per-element log density as a last output)
    and return the sum of that log density as its term."""
    n = attrs["size"] if e.op == "plate" else attrs["length"]
    lp = None
    if terms:
        yields.append(_total(terms, inner_out, e.span))
        lp = Var(stacked(REAL, n), "lp")
        outs.append(lp)
    new = Eqn(e.op, outs, args, attrs, [Region(params, inner_out, yields)], e.span)
    out.extend(hoist(new) if e.op == "scan" else [new])
    if lp is None:
        return []
    return [_emit(out, "fn", REAL, [lp], {"name": "sum", "axis": None}, e.span, "lp")]


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
        root = sorted(_address_of(s.body, r) for r in deps[region.outs[j]])[0]
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
    first = _emit(alpha0_out, "fn", BOOL, [slot, init if in_range else Lit(0, INT)],
                  {"name": "eq"}, e.span)
    a0 = _emit(alpha0_out, "fn", REAL, [first, Lit(0.0, REAL), NEG_INF], {"name": "where"},
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
    step_terms = _close(e, attrs, outs, yields, new_args, params, step_out, terms, out)
    final = _emit(out, "fn", REAL, [outs[0]], {"name": "logsumexp", "axis": None}, e.span, "lp")
    return [final] + step_terms


def _transition(s: Summation, choice: Eqn, group: list[Eqn], state_param: Var, init: Atom,
                t: Var, alpha: Var, k: int, ctx: Context, out: list[Eqn], span) -> Var:
    """α'(z) = logsumexp_c(α(c) + ℓ(c, z)) + ℓ(z), with plates over the new state z and the
    previous state c: ℓ(c, z) holds the step's terms that read c, ℓ(z) the others (the
    emission), so that each is computed where it can be hoisted out of the loop. With
    ``init`` None, c is the previous state itself; else step 0 reads ``init`` for every c."""
    reads_c, free = _split_by_state(s, group, choice, state_param)
    z = Var(INT, "z")
    inner = ctx.inner(joint=ctx.joint * k, summing=ctx.summing + (choice.attrs["address"],))

    def transitions(z_out: list[Eqn]) -> Var:
        zv = _cast(z_out, z, choice.outs[0].type.dtype, span)
        prev = Var(INT, "c")
        c_out: list[Eqn] = []
        cv = prev
        if init is not None:
            at_start = _emit(c_out, "fn", BOOL, [t, Lit(0, INT)], {"name": "eq"}, span)
            cv = _emit(c_out, "fn", INT, [at_start, init, prev], {"name": "where"}, span,
                       state_param.hint)
        c_ctx = inner.inner()
        c_ctx.fixed[choice.outs[0]] = zv
        c_ctx.subst[state_param] = _cast(c_out, cv, state_param.type.dtype, span)
        terms, _ = s.block(reads_c, c_ctx, c_out)
        lp = _total(terms, c_out, span)
        lps = Var(stacked(REAL, k), "lp")
        z_out.append(Eqn("plate", [lps], [], {"size": k}, [Region([prev], c_out, [lp])], span))
        return lps

    emission = None
    if free:
        e_out: list[Eqn] = []
        e_ctx = inner.inner()
        e_ctx.subst[choice.outs[0]] = e_ctx.fixed[choice.outs[0]] = _cast(
            e_out, z, choice.outs[0].type.dtype, span)
        terms, _ = s.block(free, e_ctx, e_out)
        emission = Var(stacked(REAL, k), "lp")
        out.append(Eqn("plate", [emission], [], {"size": k},
                       [Region([z], e_out, [_total(terms, e_out, span)])], span))
        z = Var(INT, "z")
    # ℓ(c, z) for every z: its own plate, so that it is hoisted when it reads no carry.
    t_out: list[Eqn] = []
    lps = transitions(t_out)
    table = Var(ArrayType("float32", (k, k)), "lp")
    out.append(Eqn("plate", [table], [], {"size": k}, [Region([z], t_out, [lps])], span))
    row = Var(stacked(REAL, k), "lp")
    z_out: list[Eqn] = []
    both = _emit(z_out, "fn", stacked(REAL, k), [alpha, row], {"name": "add"}, span, "lp")
    a = _emit(z_out, "fn", REAL, [both], {"name": "logsumexp", "axis": None}, span, "alpha")
    args, params = [table], [Var(INT, "z"), row]
    if emission is not None:
        em = Var(REAL, "lp")
        a = _emit(z_out, "fn", REAL, [a, em], {"name": "add"}, span, "alpha")
        args.append(emission)
        params.append(em)
    alpha_new = Var(stacked(REAL, k), "alpha")
    out.append(Eqn("plate", [alpha_new], args, {"size": k}, [Region(params, z_out, [a])], span))
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


RULES: dict[str, Callable] = {
    "sample": _sample, "factor": _factor, "plate": _plate, "scan": _scan,
}
"""Every other op (fn, index, param, trace_get, cond, density, ...) is pure: copied."""


# -------------------------------------------------------------- loop-independent code


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
        r = _reads_all(eq)
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
    read_later = {v for eq in rest for v in _reads_all(eq)} | {
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


def _reads_all(e: Eqn) -> set:
    got = {a for a in e.args if isinstance(a, Var)}
    for r in e.regions:
        got.update(o for o in r.outs if isinstance(o, Var))
        for inner in walk(r):
            got.update(a for a in inner.args if isinstance(a, Var))
            for rr in inner.regions:
                got.update(o for o in rr.outs if isinstance(o, Var))
    return got


# -------------------------------------------------------------- helpers


def _emit(out: list[Eqn], op: str, type_, args: list, attrs: dict, span, hint: str = "") -> Var:
    v = Var(type_, hint)
    out.append(Eqn(op, [v], list(args), attrs, [], span))
    return v


def _cast(out: list[Eqn], v: Atom, dtype: str, span) -> Atom:
    if v.type.dtype == dtype:
        return v
    name = {"int32": "int", "float32": "float"}.get(dtype)
    if name is None:  # bool
        return _emit(out, "fn", ArrayType(dtype, v.type.shape), [v, Lit(0, INT)], {"name": "ne"},
                     span, getattr(v, "hint", ""))
    return _emit(out, "fn", ArrayType(dtype, v.type.shape), [v], {"name": name}, span,
                 getattr(v, "hint", ""))


def _total(terms: list, out: list[Eqn], span) -> Atom:
    if not terms:
        return Lit(0.0, REAL)
    total = terms[0]
    for term in terms[1:]:
        total = _emit(out, "fn", REAL, [total, term], {"name": "add"}, span, "lp")
    return total


def _used(body: Region) -> set:
    """The variables the body's log density may read: arguments of its equations, and a
    region's yields where what they become is read (a loop's carries where read by the
    next step). Its return value, and values only it reads, are not."""
    eqns = list(walk(body))
    got = {a for e in eqns for a in e.args if isinstance(a, Var)}
    changed = True
    while changed:
        changed = False
        for e in eqns:
            if e.op not in ("plate", "scan", "cond"):
                continue
            carries = e.attrs.get("carries", 0)
            for r in e.regions:
                for j, (o, y) in enumerate(zip(e.outs, r.outs)):
                    read = o in got or (e.op == "scan" and j < carries and r.params[1 + j] in got)
                    if read and isinstance(y, Var) and y not in got:
                        got.add(y)
                        changed = True
    return got


def _addresses(region: Region) -> set:
    got = set()
    for e in region.eqns:
        if e.op == "sample":
            got.add(e.attrs["address"])
        elif e.op in ("plate", "scan", "cond"):
            for r in e.regions:
                got |= _addresses(r)
    return got


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


def _address_of(body: Region, v: Var) -> str:
    for e in walk(body):
        if e.op == "sample" and e.outs[0] is v:
            return e.attrs["address"]
    return v.hint or "?"

