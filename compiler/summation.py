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
  plates too. Its values used after it must not depend on them. A component
  that reads nothing the element computes outside it (a mixture's
  assignment) is one K x N table before the plate, its support values
  outermost (``plate k { plate i { … } }``, reduced by ``logsumexp`` along
  axis 0, as NumPyro's enumeration lays it out); one that does, or any in a
  minibatch fit (whose N/B scaling reads each element's log density), is a
  plate over its support inside each element;
- **a for loop** whose carried value is a summed choice drawn in the step
  (``z = 0; for t in T { z ~ categorical(logits=A[z]); … }``) runs the
  forward algorithm: a ``scan`` carrying α, the log probability of each of
  the K states and the data so far, α'(z) = logsumexp_c(α(c) + ℓ_t(c, z)),
  ℓ_t the log density of step t with carried state c and new state z (cost
  T·K²). α starts on the loop's initial value when it is a literal state;
  otherwise step 0 reads the initial value wherever c is read, so any value
  works. ℓ_t splits into the terms that read c (a K x K transition table)
  and the others (the emission, a vector over z), and :func:`hoist` moves
  what reads no carry out of the loop (the table before it, the emissions
  into a plate over the steps), so the loop runs logsumexp(α + table[z]) +
  emission[z] only, as a hand-written forward algorithm does. A step's
  choices that do not reach the carry are summed per step.

Anything else (a plate's value that depends on a choice summed inside it, a
loop carrying another value computed from a summed choice, a continuous or
infinite-support choice among those summed, an array of choices drawn at
once) is a compile error naming the choice.

Every op of a model body has one rule in :data:`RULES`: ``rule(summation,
eqn, context, out) -> log-density terms``, emitting into ``out``.

    >>> # gen mix(N) { mu ~ normal(0, 1); plate i in N { z ~ bernoulli(0.3); x ~ normal(mu*z, 1) } }
    >>> # density(marginal(mix(N), keep=["mu", "x"], exact=true), t) lowers to
    >>> #   lp_mu = logpdf[normal](mu, 0, 1)
    >>> #   table = plate[size=2] { |k| plate[size=N](x) { |i, x_i| logpdf[bernoulli](k, 0.3)
    >>> #                                   + logpdf[normal](x_i, mu*k, 1) } }        (2 x N)
    >>> #   lse = logsumexp(table, axis=0); lp_i = plate[size=N](lse) { |i, l_i| yield l_i }
    >>> #   lp = lp_mu + sum(lp_i)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .diagnostics import error
from .ir import Atom, Eqn, Lit, Region, Var, stacked, walk
from .types import INT, REAL, ArrayType

# The most joint values one sum may enumerate (the product of the supports of the choices
# summed together, nested): beyond it the program is rejected, since its cost would be that
# many evaluations of the model. Choices per plate element and per loop step do not multiply.
JOINT_LIMIT = 4096


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

    def __init__(self, library, body: Region, summed: frozenset, detached: bool, span,
                 tables_outside: bool = True):
        self.library = library
        self.body = body
        self.summed = summed
        self.detached = detached
        self.span = span
        # Whether a plate's component that reads nothing per element may be one table
        # before the plate (plate_block). Not in a minibatch fit: its N/B scaling
        # (passes/expand.py) reads each element's log density inside its plate.
        self.tables_outside = tables_outside
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
            v = emit(out, "trace_get", have, [given], {"address": address}, self.span,
                      address.replace("/", "_"))
            ctx.given[address] = cast(out, v, want.dtype, self.span)
        terms, _ = self.block(self.body.eqns, ctx, out)
        return out, total(terms, out, self.span)

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
            self._reads[key] = reads_all(e)
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
        value = cast(inner_out, k, choice.outs[0].type.dtype, choice.span)
        inner = ctx.inner(joint=joint, summing=ctx.summing + (address,))
        inner.fixed[choice.outs[0]] = value
        terms, _ = self.block(group, inner, inner_out)
        lp = total(terms, inner_out, choice.span)
        lps = Var(stacked(REAL, size), "lp")
        out.append(Eqn("plate", [lps], [], {"size": size},
                       [Region([k], inner_out, [lp])], choice.span))
        return emit(out, "fn", REAL, [lps], {"name": "logsumexp", "axis": None}, choice.span,
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
            address = next(iter(sorted(address_of(self.body, r) for r in roots)))
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
    attrs = {"dist": e.attrs["dist"], "form": e.attrs["form"]}
    if e.attrs.get("masked"):  # ``x ~ d if m``: the mask, the last argument, reaches the logpdf
        args.append(ctx.sub(e.args[-1]))
        attrs["masked"] = True
    return [emit(out, "logpdf", REAL, [value] + args, attrs, e.span, "lp")]


def _factor(s: Summation, e: Eqn, ctx: Context, out: list[Eqn]) -> list:
    v = ctx.sub(e.args[0])
    if isinstance(v.type, ArrayType) and v.type.shape != ():
        v = emit(out, "fn", REAL, [v], {"name": "sum", "axis": None}, e.span, "lp")
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
    return per_element(s, e, ctx, out, "plate", 0)


def per_element(s: Summation, e: Eqn, ctx: Context, out: list[Eqn], where: str,
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
    if e.op == "plate" and s.tables_outside:
        terms, deps = plate_block(s, e, ctx, inner, inner_out, out, args, params)
    else:
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
    return close_loop(e, dict(e.attrs), outs, yields, args, params, inner_out, terms, out)


def plate_block(s: Summation, e: Eqn, ctx: Context, inner: Context, inner_out: list[Eqn],
                out: list[Eqn], args: list, params: list) -> tuple[list, dict]:
    """A plate's body, as :meth:`Summation.block`, except that a component whose equations
    read nothing the body computes outside it (the plate's index, inputs and kept values,
    and values from outside the plate: a mixture's ``z ~ categorical(w); x ~ normal(m[z],
    1)``) is summed by :func:`sum_outside`: one K x N table before the plate, its support
    values outermost, and each element reads its own logsumexp."""
    region = e.regions[0]
    roots = s.roots(region.eqns, inner)
    if not roots:
        return s.each(region.eqns, inner, inner_out), {}
    part = s.partition(region.eqns, roots)
    computed = {o for x in part.independent for o in x.outs}
    terms = s.each(part.independent, inner, inner_out)
    for group in part.groups:
        if any(s.reads(x) & computed for x in group):
            terms.append(s.sum_over(group[0], group, inner, inner_out))
            continue
        lse = sum_outside(s, e, group, ctx, out)
        g = Var(REAL, "lp")
        args.append(lse)
        params.append(g)
        terms.append(g)
    return terms, part.deps


def sum_outside(s: Summation, e: Eqn, group: list[Eqn], ctx: Context, out: list[Eqn]) -> Var:
    """log Σ_k exp(the terms of ``group`` with its first choice = k) for every element of
    the plate ``e``, as ``logsumexp(table, axis=0)`` of a table with the support values
    outermost: ``plate k { plate[N] { … } }``, K x N. The same sum as a plate over k inside
    each element (:meth:`Summation.sum_over`), laid out as NumPyro's enumeration lays it
    (the enumerated axis leading): the reduction runs over K rows of N contiguous values,
    not over N rows of K."""
    choice = group[0]
    size, n = s.support(choice), e.attrs["size"]
    address = choice.attrs["address"]
    joint = ctx.joint * size
    if joint > JOINT_LIMIT:
        return s.sum_over(choice, group, ctx, out)  # raises the error, naming the choices
    region = e.regions[0]
    k = Var(INT, "k")
    k_out: list[Eqn] = []
    value = cast(k_out, k, choice.outs[0].type.dtype, choice.span)
    args = [ctx.sub(a) for a in e.args]
    params = [Var(p.type, p.hint) for p in region.params]
    inner = ctx.inner(joint=joint, summing=ctx.summing + (address,))
    inner.subst.update(zip(region.params, params))
    inner.given = s.sliced(region, ctx, args, params)
    inner.fixed[choice.outs[0]] = value
    i_out: list[Eqn] = []
    terms, _ = s.block(group, inner, i_out)
    lp = total(terms, i_out, choice.span)
    row = Var(stacked(REAL, n), "lp")
    k_out.append(Eqn("plate", [row], args, {"size": n}, [Region(params, i_out, [lp])],
                     choice.span))
    table = Var(ArrayType(REAL.dtype, (size, n)), "lp")
    out.append(Eqn("plate", [table], [], {"size": size}, [Region([k], k_out, [row])],
                   choice.span))
    return emit(out, "fn", stacked(REAL, n), [table], {"name": "logsumexp", "axis": 0},
                choice.span, "lp")


def close_loop(e: Eqn, attrs: dict, outs, yields, args, params, inner_out, terms, out) -> list:
    """Emit the rewritten plate or scan (its per-element log density as a last output)
    and return the sum of that log density as its term."""
    n = attrs["size"] if e.op == "plate" else attrs["length"]
    lp = None
    if terms:
        yields.append(total(terms, inner_out, e.span))
        lp = Var(stacked(REAL, n), "lp")
        outs.append(lp)
    from .summation_loops import hoist

    new = Eqn(e.op, outs, args, attrs, [Region(params, inner_out, yields)], e.span)
    out.extend(hoist(new) if e.op == "scan" else [new])
    if lp is None:
        return []
    return [emit(out, "fn", REAL, [lp], {"name": "sum", "axis": None}, e.span, "lp")]


def _scan(s: Summation, e: Eqn, ctx: Context, out: list[Eqn]) -> list:
    from .summation_loops import scan_rule  # the forward algorithm (imports this module)

    return scan_rule(s, e, ctx, out)


RULES: dict[str, Callable] = {
    "sample": _sample, "factor": _factor, "plate": _plate, "scan": _scan,
}
"""Every other op (fn, index, param, trace_get, cond, density, ...) is pure: copied."""


def reads_all(e: Eqn) -> set:
    """Every variable ``e`` reads: its arguments and its regions' free variables."""
    got = {a for a in e.args if isinstance(a, Var)}
    for r in e.regions:
        got.update(o for o in r.outs if isinstance(o, Var))
        for inner in walk(r):
            got.update(a for a in inner.args if isinstance(a, Var))
            for rr in inner.regions:
                got.update(o for o in rr.outs if isinstance(o, Var))
    return got


# -------------------------------------------------------------- helpers


def emit(out: list[Eqn], op: str, type_, args: list, attrs: dict, span, hint: str = "") -> Var:
    """Append one equation with one fresh output to ``out``; return the output."""
    v = Var(type_, hint)
    out.append(Eqn(op, [v], list(args), attrs, [], span))
    return v


def cast(out: list[Eqn], v: Atom, dtype: str, span) -> Atom:
    """``v`` as ``dtype`` (int, real or bool), emitting the conversion when needed."""
    if v.type.dtype == dtype:
        return v
    name = {"int32": "int", "float32": "float"}.get(dtype)
    if name is None:  # bool
        return emit(out, "fn", ArrayType(dtype, v.type.shape), [v, Lit(0, INT)], {"name": "ne"},
                     span, getattr(v, "hint", ""))
    return emit(out, "fn", ArrayType(dtype, v.type.shape), [v], {"name": name}, span,
                 getattr(v, "hint", ""))


def total(terms: list, out: list[Eqn], span) -> Atom:
    """The sum of log-density terms (0.0 for none), emitted into ``out``."""
    if not terms:
        return Lit(0.0, REAL)
    acc = terms[0]
    for term in terms[1:]:
        acc = emit(out, "fn", REAL, [acc, term], {"name": "add"}, span, "lp")
    return acc


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


def address_of(body: Region, v: Var) -> str:
    """The address of the choice whose value is ``v`` (its hint for a loop's carry)."""
    for e in walk(body):
        if e.op == "sample" and e.outs[0] is v:
            return e.attrs["address"]
    return v.hint or "?"

