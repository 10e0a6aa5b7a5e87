"""enum and mvd inside ``for`` loops: the unroll pass (compiler/passes/unroll.py).

A 4-step chain whose bernoulli and categorical choices depend on the carried
state (the previous step's categorical), drawn through ``sim`` inside
``expect``. Its exact value and gradient come from enumerating all
(2·3)^4 = 1296 paths in JAX (``exact``). Checked:

- enum (the default of both families) is exact for every key;
- mvd, and reinforce mixed with enum in one unrolled loop, are unbiased (the
  mean of many estimates within a few standard errors), and so is reinforce
  alone, where the loop stays a ``lax.scan``; unrolled by force, the reinforce
  loop gives the same distribution of estimates as the scan (differential);
- the ELBO of a hidden Markov model with a chain family is exact;
- negative controls: an enum rule without the probabilities' tangent, and an
  mvd rule without its weak derivative, fail the same checks; the exact
  gradient differs from the one where each choice's continuation ends with
  its step (what a scan could give);
- the trace that ``sim`` builds keeps its addresses and shapes, overrides
  reach every unrolled copy, the IR grows linearly for enum and the re-run
  cost stays quadratic (not exponential) for mvd; loops nested in loops,
  plates in loops.

The limits' messages are goldens in tests/adev/bad (``*for_loop*``).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl.compiler import passes
from ppl.compiler.backend.adev import objective_function
from ppl.compiler.ir import walk
from ppl.stdlib.library import STANDARD

from adev_stats import check, check_all, run_once, sample_estimates

T = 4
SOURCE = """
gen chain(T: int) {
    param a: real = 0.0
    param l: real[3] = 0.0
    param r: real<lower=0> = 1.0
    s = 0
    x = 0.0
    for t in T {
        b ~ bernoulli(logits=a * float(s) - 0.5)
        c ~ categorical(logits=where(b == 1, l, r * l))
        s = c
        x = x + float(b) * float(c) + float(t) * float(c)
    }
    return x
}

objective chain_objective(T: int) {
    return expect {
        (tr, lq) = sim(chain(T))
        return retval(tr) * retval(tr) + sum(float(tr.b)) - lq
    }
}

# A hidden Markov model and a family that is a chain too: the ELBO's model density keeps its
# loop (a scan without choices), the family's loop is unrolled.
gen hmm(T: int) {
    z = 0
    for t in T {
        z ~ bernoulli(where(z == 1, 0.8, 0.3))
        x ~ normal(float(z) * 2.0 - 1.0, 1.0)
    }
}

gen hmm_guide(T: int) {
    param a: real = 0.5
    param w: real[T] = 0.2
    z = 0
    for t in T {
        z ~ bernoulli(logits=w[t] + a * float(z))
    }
}

# A loop in a loop, and a plate in a loop: both unrolled around their choices.
objective nested() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        n = 0.0
        for t in 2 {
            for u in 2 {
                b ~ bernoulli(p * where(n > 0.0, 0.5, 1.0))
                n = n + float(b)
            }
        }
        return n * n
    }
}

# A trace per step (sim inside the loop), stacked after it; and a loop of no steps.
gen coin() {
    param p: real<lower=0, upper=1> = 0.3
    b ~ bernoulli(p)
    return float(b) * 2.0
}

objective coins(n: int) {
    return expect {
        total = 0.0
        for t in n {
            (tr, lq) = sim(coin())
            total = total + retval(tr) + float(tr.b)
        }
        return total * total + float(sum(tr.b)) + sum(lq)
    }
}

# For the size of the traced program as the loop grows.
objective walk(T: int) {
    param theta: real<lower=0, upper=1> = 0.3
    return expect {
        s = 0
        n = 0.0
        for t in T {
            b ~ bernoulli(where(s == 1, theta, 0.5))
            s = b
            n = n + float(b)
        }
        return n * n
    }
}

objective plated() {
    param p: real<lower=0, upper=1> = 0.3
    return expect {
        n = 0.0
        for t in 2 {
            plate i in 2 {
                b ~ bernoulli(where(n > 0.0, 1.4 * p - 0.12, p))
            }
            n = n + sum(float(b))
        }
        return n * n + n
    }
}
"""

PARAMS = {"chain.a": 0.7, "chain.l": [0.3, -0.5, 0.2], "chain.r": 0.4}  # unconstrained

PATHS = np.array(list(itertools.product(itertools.product([0, 1], range(3)), repeat=T)))
B, C = PATHS[..., 0], PATHS[..., 1]  # [1296, T] each


def exact(q, myopic: bool = False):
    """E over all paths of retval² + Σ b − log q, by enumeration. ``myopic``: each step's
    probabilities see the parameters, the earlier steps' only as constants (the gradient
    a choice gets when its continuation ends with its step)."""
    a, l, r = q["chain.a"], jnp.asarray(q["chain.l"]), jnp.exp(q["chain.r"])
    s = jnp.zeros(len(PATHS))
    x = jnp.zeros(len(PATHS))
    logp = jnp.zeros(len(PATHS))
    weight = jnp.zeros(len(PATHS))  # the log probability the expectation weights by
    for t in range(T):
        b, c = B[:, t], C[:, t]
        lb = a * s - 0.5
        lp_t = b * jax.nn.log_sigmoid(lb) + (1 - b) * jax.nn.log_sigmoid(-lb)
        lc = jnp.where(b[:, None] == 1, l, r * l)
        lp_t = lp_t + jax.nn.log_softmax(lc)[np.arange(len(PATHS)), c]
        logp = logp + lp_t
        weight = (jax.lax.stop_gradient(weight) if myopic else weight) + lp_t
        s = c.astype(jnp.float32)
        x = x + b * c + t * c
    f = x * x + B.sum(1) - logp
    return jnp.sum(jnp.exp(weight) * f)


def exact_value_and_grad(**kw):
    q = {k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()}
    value, grads = jax.value_and_grad(lambda q: exact(q, **kw))(q)
    return float(value), {k: np.asarray(v, np.float64) for k, v in grads.items()}


def params_of(obj):
    params = obj.init(jax.random.PRNGKey(0))
    assert set(params) == set(PARAMS)
    return {k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()}


@pytest.fixture(scope="module")
def module():
    return ppl.compile(SOURCE)


# ---------------------------------------------------------------- exactness and unbiasedness


def enum_is_exact(obj) -> tuple[bool, str]:
    """Every key's value and gradient equal the exact ones (to 1e-5)."""
    value, grads = exact_value_and_grad()
    values, estimates = sample_estimates(obj, params_of(obj), n=8)
    errors = [np.max(np.abs(values - value)) / (1 + abs(value))]
    errors += [np.max(np.abs(estimates[k] - grads[k])) / (1 + np.max(np.abs(grads[k])))
               for k in grads]
    return max(errors) < 1e-5, f"values {values[:3]} exact {value}; relative errors {errors}"


def test_enum_in_a_loop_is_exact_for_every_key(module):
    obj = module.chain_objective(T)  # bernoulli's and categorical's default: enum
    ok, report = enum_is_exact(obj)
    assert ok, report


@pytest.mark.parametrize("estimators", [{"b": "mvd", "c": "mvd"}, {"b": "reinforce", "c": "enum"}],
                         ids=["mvd", "reinforce+enum"])
def test_mvd_and_reinforce_in_a_loop_are_unbiased(module, estimators):
    """mvd, and a mix of reinforce and enum, in the unrolled loop."""
    obj = module.chain_objective(T).with_estimators(estimators)
    value, grads = exact_value_and_grad()
    values, estimates = sample_estimates(obj, params_of(obj), n=20_000)
    verdict = check_all(estimates, grads)
    assert verdict, verdict
    assert check(values, value, name="value")


def test_an_unrolled_reinforce_loop_agrees_with_its_scan(module, monkeypatch):
    """Differential: the reinforce loop, kept a lax.scan, against the same loop unrolled
    (forced by declaring no estimator a tail call): the same distribution of values and
    gradients (means within standard errors of each other, spreads within 10%). The keys
    of the two differ (an equation's key is its position), so samples are not paired."""
    obj = module.chain_objective(T).with_estimators({"*": "reinforce"})
    params = params_of(obj)
    scan_values, scan_grads = sample_estimates(obj, params, n=20_000)
    value, exact_grads = exact_value_and_grad()
    assert check_all(scan_grads, exact_grads) and check(scan_values, value)  # unbiased too
    program = obj.program(after="simplify")
    with monkeypatch.context() as patch:
        patch.setattr(STANDARD, "estimator_tail", frozenset())
        program = passes.unroll(program, STANDARD, {"*": "reinforce"})
    assert "scan" not in [e.op for e in walk(program.functions[program.entry].body)]
    program = passes.assign_estimators(program, STANDARD, {"*": "reinforce"})
    f = jax.value_and_grad(objective_function(program, STANDARD))
    keys = jax.random.split(jax.random.PRNGKey(1), 20_000)
    values, grads = run_once(jax.vmap(lambda k: f(params, k, [])), keys)
    pairs = [(scan_values, np.asarray(values))] + [(scan_grads[k], np.asarray(grads[k])) for k in grads]
    for a, b in pairs:
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * se), (a.mean(0), b.mean(0), se)
        assert np.all(np.abs(a.std(0) / b.std(0) - 1) < 0.1), (a.std(0), b.std(0))


def test_the_exact_gradient_needs_the_later_steps():
    """Negative control: the gradient where each choice's continuation ends with its step
    differs from the exact one by far more than the tolerances above."""
    _, grads = exact_value_and_grad()
    _, myopic = exact_value_and_grad(myopic=True)
    assert max(np.max(np.abs(grads[k] - myopic[k])) for k in grads) > 0.5


def _enum_without_probability_tangents(site, k):
    """WRONG: Σ_v p_v ℓ̇_v, dropping Σ_v ṗ_v ℓ_v (for choices of one element)."""
    p, _ = site.probs()
    ls, l_dots = jax.vmap(lambda v: k(jnp.full(site.shape, v, site.dtype), None))(site.support())
    p = p.reshape(-1)
    return jnp.sum(p * ls), None if l_dots is None else jnp.sum(p * l_dots)


def _mvd_without_weak_derivative(site, k):
    """WRONG: the sampled continuation's tangent alone."""
    return k(site.sample(), None)


def test_a_wrong_enum_rule_fails_the_check(monkeypatch):
    monkeypatch.setitem(STANDARD.estimators, "enum", _enum_without_probability_tangents)
    ok, report = enum_is_exact(ppl.compile(SOURCE).chain_objective(T))  # a fresh module
    assert not ok, report


def test_a_wrong_mvd_rule_fails_the_check(monkeypatch):
    monkeypatch.setitem(STANDARD.estimators, "mvd", _mvd_without_weak_derivative)
    obj = ppl.compile(SOURCE).chain_objective(T).with_estimators({"b": "mvd", "c": "mvd"})
    _, grads = exact_value_and_grad()
    _, estimates = sample_estimates(obj, params_of(obj), n=20_000)
    assert not check_all(estimates, grads)


def test_the_elbo_of_a_hidden_markov_model_is_exact(module):
    """ppl.stdlib.elbo with a chain family: the family's enumerated choices see the model's
    density of every later step (a scan over the observations) in their continuation."""
    xs = np.float32([0.5, -1.2, 1.5])
    obj = ppl.stdlib.elbo(module.hmm(3) | {"x": xs}, module.hmm_guide(3))
    params = {k: jnp.asarray(v, jnp.float32) for k, v in obj.init(jax.random.PRNGKey(0)).items()}
    params["hmm_guide.w"] = jnp.float32([0.2, -0.4, 0.9])

    def elbo(q):
        z = np.array(list(itertools.product([0, 1], repeat=3)))
        prev = np.concatenate([np.zeros((8, 1), int), z[:, :-1]], 1)
        logits = q["hmm_guide.w"] + q["hmm_guide.a"] * prev
        log_q = jnp.sum(jnp.where(z == 1, jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)), 1)
        pz = np.where(prev == 1, 0.8, 0.3)
        log_p = np.sum(np.log(np.where(z == 1, pz, 1 - pz))
                       + jax.scipy.stats.norm.logpdf(xs, 2.0 * z - 1.0, 1.0), 1)
        return jnp.sum(jnp.exp(log_q) * (log_p - log_q))

    value, grads = jax.value_and_grad(elbo)(params)
    values, estimates = sample_estimates(obj, params, n=8)
    np.testing.assert_allclose(values, float(value), rtol=1e-5)
    for k in grads:
        np.testing.assert_allclose(estimates[k], np.broadcast_to(grads[k], estimates[k].shape),
                                   rtol=1e-5, atol=1e-6)


def test_a_loop_of_traces_and_a_loop_of_no_steps(module):
    """sim inside the loop: each step's trace, stacked after the loop (the trace type of
    the scan's output, rebuilt from the steps'); enum exact. With no steps, zeros."""
    obj = module.coins(3)
    assert "scan" not in [e.op for e in walk(_body(obj.program(after="unroll")))]

    def expectation(u):  # total = 3·S, S ~ binomial(3, p); Σ lq: three bernoulli entropies
        p = jax.nn.sigmoid(u)
        return 9 * (3 * p * (1 - p) + 9 * p * p) + 3 * p + 3 * (p * jnp.log(p) + (1 - p) * jnp.log(1 - p))

    params = obj.init(jax.random.PRNGKey(0))
    value, grad = jax.value_and_grad(expectation)(params["coin.p"])
    values, grads = sample_estimates(obj, params, n=4)
    np.testing.assert_allclose(values, float(value), rtol=1e-5)
    np.testing.assert_allclose(grads["coin.p"], float(grad), rtol=1e-5)
    empty = module.coins(0)
    assert float(empty.value(jax.random.PRNGKey(0), empty.init(jax.random.PRNGKey(0)))) == 0.0


# ---------------------------------------------------------------- nesting


def _enumerate(steps, f, theta):
    """E[f(path)] over the paths of Bernoulli choices, ``steps(path_so_far, theta)`` giving
    each next choice's probability (exact, by enumeration)."""
    def expectation(u):
        p = jax.nn.sigmoid(u)
        total = 0.0
        for path in itertools.product([0, 1], repeat=len(steps)):
            weight = 1.0
            for i, step in enumerate(steps):
                q = step(path[:i], p)
                weight = weight * (q if path[i] else 1 - q)
            total = total + weight * f(path)
        return total
    return jax.value_and_grad(expectation)(jnp.asarray(theta, jnp.float32))


def _nested_probability(before, p):
    return p * (1.0 - 0.5 * min(sum(before), 1.0))


def _plated_probability(before, p):
    first_step = before[:2] if len(before) >= 2 else ()
    return 1.4 * p - 0.12 if sum(first_step) > 0 else p


@pytest.mark.parametrize("name,steps,f,exactly", [
    ("nested", [_nested_probability] * 4, lambda path: sum(path) ** 2, True),
    ("plated", [_plated_probability] * 4, lambda path: sum(path) ** 2 + sum(path), False)])
def test_loops_in_loops_and_plates_in_loops(module, name, steps, f, exactly):
    """A loop in an unrolled loop is unrolled too (enum exact); an enumerated choice in a
    plate in a loop is a batched choice (its local expectation gradient, unbiased)."""
    obj = getattr(module, name)()
    params = obj.init(jax.random.PRNGKey(0))
    (path,) = params
    value, grad = _enumerate(steps, f, params[path])
    values, grads = sample_estimates(obj, params, n=8 if exactly else 20_000)
    if exactly:
        np.testing.assert_allclose(values, float(value), rtol=1e-5)
        np.testing.assert_allclose(grads[path], float(grad), rtol=1e-5)
    else:
        assert check(values, float(value), name="value")
        assert check(grads[path], float(grad), name=path)


# ---------------------------------------------------------------- the program


def _body(program):
    return program.functions[program.entry].body


def _traces(program):
    return [(repr(e.outs[0].type), [repr(a.type) for a in e.args])
            for e in walk(_body(program)) if e.op == "make_trace"]


def test_the_trace_sim_builds_keeps_its_addresses_and_shapes(module):
    obj = module.chain_objective(T)
    looped, unrolled = obj.program(after="simplify"), obj.program(after="unroll")
    assert [e.op for e in walk(_body(looped))].count("scan") == 1
    assert "scan" not in [e.op for e in walk(_body(unrolled))]
    assert _traces(unrolled) == _traces(looped)
    (trace, fields), = _traces(unrolled)
    assert trace == "trace{b: int[4], c: int[4]}" and fields[:2] == ["int[4]", "int[4]"]


def test_overrides_reach_every_unrolled_choice(module):
    program = module.chain_objective(T).with_estimators({"c": "mvd"}).program()
    draws = sorted((e.attrs["address"], e.attrs["estimator"])
                   for e in walk(_body(program)) if e.op == "draw")
    assert draws == [("b", "enum")] * T + [("c", "mvd")] * T
    # Only reinforce: nothing needs the later steps, and the loop stays a lax.scan.
    program = module.chain_objective(T).with_estimators({"*": "reinforce"}).program()
    assert [e.op for e in walk(_body(program))].count("scan") == 1


def _traced_lines(obj) -> int:
    params = obj.init(jax.random.PRNGKey(0))
    return str(jax.make_jaxpr(obj.value_and_grad)(jax.random.PRNGKey(1), params)).count("\n")


def test_the_traced_program_grows_polynomially_with_the_steps(module):
    """enum's continuations are traced once each (vmapped over the support): linear in
    the steps. mvd's alternatives re-run the rest of the block for their values only,
    where later mvd choices call their continuation once: quadratic, not exponential
    (2^T traces of the rest before, 50 s to trace 8 steps)."""
    enum = [_traced_lines(module.walk(n)) for n in (4, 8)]
    mvd = [_traced_lines(module.walk(n).with_estimators({"b": "mvd"})) for n in (4, 8)]
    assert enum[1] < 3.5 * enum[0], enum
    assert mvd[1] < 5 * mvd[0], mvd


LOOPS_IN_PLATES = """
objective walks() {
    param mu: real = 0.5
    return expect {
        plate i in 3 {
            z = 0.0
            for t in 2 {
                e ~ normal(mu, 1.0)
                z = z + e
            }
        }
        return sum(z * z)
    }
}
objective counts() {
    param theta: real<lower=0, upper=1> = 0.3
    return expect {
        plate i in 3 {
            n = 0.0
            for t in 2 {
                b ~ bernoulli(theta) with enum
                n = n + float(b)
            }
        }
        return sum(n * n)
    }
}
"""


@pytest.mark.parametrize("name, expectation", [
    # z = e_1 + e_2 ~ normal(2 mu, sqrt 2): E[z^2] = 4 mu^2 + 2, three of them
    ("walks", lambda p: 3 * (4 * p["walks.mu"] ** 2 + 2)),
    # n ~ binomial(2, theta): E[n^2] = 2 theta (1 - theta) + 4 theta^2, three of them
    ("counts", lambda p: 3 * (2 * jax.nn.sigmoid(p["counts.theta"]) * (1 - jax.nn.sigmoid(
        p["counts.theta"])) + 4 * jax.nn.sigmoid(p["counts.theta"]) ** 2)),
])
def test_a_for_loop_in_a_plate_is_unrolled_and_unbiased(name, expectation):
    """A loop with random choices inside a plate inside expect is unrolled (ADEV runs a
    plate's body batched, with no lax.scan of choices there): reparam and enum choices
    in it have unbiased gradients (enum exact)."""
    from adev_stats import assert_unbiased

    m = ppl.compile(LOOPS_IN_PLATES)
    assert_unbiased(getattr(m, name)(), expectation, n=20_000)
