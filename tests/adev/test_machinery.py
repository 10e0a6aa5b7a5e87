"""The ADEV interpreter's machinery (compiler/backend/adev.py), at the backend level.

- ``objective_function``'s primal is ADEV's value, so ``jax.jit(f)`` honours enum and
  ``jax.grad(f)`` is ADEV's unbiased gradient, not the naive derivative of a sample.
- Integer sums in separable blocks (``float(sum(z))`` of bernoulli choices) are real
  weighted sums, under enum, mvd and Rao-Blackwellised reinforce.
- A learned baseline that reads a parameter used elsewhere is rejected.
- A traced ``if`` whose condition varies over a plate, or follows an enumerated
  choice, is differentiable (a masked select), and unbiased.
- With ``jax_enable_x64``, a ``for`` loop with reinforce and the separable enum path run.
- Unsupported structure is a ppl error with the user's span.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from adev_stats import check, check_all, run_once, sample_estimates
from ppl.compiler.backend.adev import objective_function
from ppl.compiler.backend.standard import evaluate
from ppl.compiler.diagnostics import PPLError

THETA = 0.3
L = np.array([0.3, -0.4, 0.1, 1.2], np.float32)  # (not 0: defect 2, numpyro's logits)

SOURCE = f"""
objective flip() {{
    param theta: real<lower=0, upper=1> = {THETA}
    return expect {{
        b ~ bernoulli(theta) with reinforce
        return where(b == 1, 0.0, -theta / 2.0)
    }}
}}

objective flip_enum() {{
    param theta: real<lower=0, upper=1> = {THETA}
    return expect {{
        b ~ bernoulli(theta) with enum
        return where(b == 1, 0.0, -theta / 2.0)
    }}
}}

objective int_sum_enum(l: real[4]) {{
    param t: real = 0.0
    return expect {{
        plate i in 4 {{ z ~ bernoulli(logits=l[i] + t) with enum }}
        return float(sum(z))
    }}
}}

objective int_sum_mvd(l: real[4]) {{
    param t: real = 0.0
    return expect {{
        plate i in 4 {{ z ~ bernoulli(logits=l[i] + t) with mvd }}
        return float(sum(z))
    }}
}}

objective int_sum_reinforce(l: real[4]) {{
    param t: real = 0.0
    return expect {{
        plate i in 4 {{ z ~ bernoulli(logits=l[i] + t) with reinforce }}
        return float(sum(z))
    }}
}}

objective shared_baseline() {{
    param th: real = 0.5
    return expect {{
        x ~ normal(th, 1.0) with reinforce(baseline=th)
        return x * x + th
    }}
}}

objective shared_baseline_indirectly() {{
    param th: real = 0.5
    return expect {{
        b = 2.0 * th
        x ~ normal(0.0, 1.0) with reinforce(baseline=b)
        return x * x + th
    }}
}}

objective own_baseline() {{
    param th: real = 0.5
    param bl: real = 0.0
    return expect {{
        b = 2.0 * bl
        x ~ normal(th, 1.0) with reinforce(baseline=b)
        return x * x + th
    }}
}}

objective if_in_plate() {{
    param t: real = 0.3
    return expect {{
        plate i in 3 {{
            x ~ normal(t, 1.0)
            if x > 0.0 {{ y = sqrt(x) * t }} else {{ y = -x }}
        }}
        return sum(y)
    }}
}}

objective if_after_enum() {{
    param t: real = 0.3
    return expect {{
        b ~ bernoulli(sigmoid(t)) with enum
        if b == 1 {{ y = t * t }} else {{ y = -t }}
        return y
    }}
}}

objective loop_reinforce() {{
    param p: real<lower=0, upper=1> = 0.3
    return expect {{
        z = 0.0
        for k in 3 {{
            b ~ bernoulli(p) with reinforce
            z = z + float(b)
        }}
        return z * z
    }}
}}

objective loop_in_plate() {{
    param t: real = 0.3
    return expect {{
        plate i in 2 {{
            z = 0.0
            for k in 65 {{
                x ~ normal(t, 1.0)
                z = z + x
            }}
        }}
        return sum(z)
    }}
}}
"""


@pytest.fixture(scope="module")
def module():
    return ppl.compile(SOURCE)


def backend(obj):
    """The objective's program, its ADEV function f(params, key, inputs), params and inputs."""
    program = obj.program()
    params = {k: jnp.asarray(v, jnp.float32) for k, v in obj.init(jax.random.PRNGKey(0)).items()}
    return program, objective_function(program, obj.module.library), params, obj.lower_inputs()[0].arrays


def unit_jacobian(theta):
    return theta * (1 - theta)  # dθ/du for θ = sigmoid(u)


# ---------------------------------------------------------------- objective_function


def test_jit_and_grad_of_the_objective_function_are_adevs():
    """f's value and jax.grad(f) are ADEV's, per key, and jax.grad(f) is unbiased for the
    README's flip: d/dθ E_{b~Bern(θ)}[b ? 0 : −θ/2] = θ − 1/2 (naive AD of the sampled
    value has mean −(1 − θ)/2, shown by the control)."""
    program, f, params, inputs = backend(ppl.compile(SOURCE).flip())
    keys = jax.random.split(jax.random.PRNGKey(1), 20_000)

    def per_key(k):
        v, g = jax.value_and_grad(f)(params, k, inputs)
        naive = jax.grad(lambda p: evaluate(program, ppl.stdlib.library.STANDARD, p, k, inputs)[0])
        return v, g, jax.jit(f)(params, k, inputs), jax.grad(f)(params, k, inputs), naive(params)

    v, g, v_jit, g_only, naive = run_once(jax.vmap(per_key), keys)
    np.testing.assert_array_equal(v, v_jit)
    np.testing.assert_array_equal(g["flip.theta"], g_only["flip.theta"])
    exact = (THETA - 0.5) * unit_jacobian(THETA)
    assert check(g_only["flip.theta"], exact, name="grad f")
    assert check(v_jit, -THETA * (1 - THETA) / 2, name="f")
    assert not check(naive["flip.theta"], exact, name="naive")  # what defect 14 returned


def test_the_value_honours_enum(module):
    """With enum, ADEV's value is the exact expectation: f's spread over keys is
    value_and_grad's (zero), where one sample of the standard semantics spreads."""
    program, f, params, inputs = backend(module.flip_enum())
    keys = jax.random.split(jax.random.PRNGKey(2), 200)
    values = jax.vmap(lambda k: f(params, k, inputs))(keys)
    vg = jax.vmap(lambda k: jax.value_and_grad(f)(params, k, inputs)[0])(keys)
    sampled = jax.vmap(lambda k: evaluate(program, module.library, params, k, inputs)[0])(keys)
    np.testing.assert_allclose(values, -THETA * (1 - THETA) / 2, rtol=1e-6)
    assert np.ptp(values) == np.ptp(vg) == 0.0
    assert np.ptp(sampled) > 0.1


# ---------------------------------------------------------------- defect 1: integer sums


@pytest.mark.parametrize("estimator", ["enum", "mvd", "reinforce"])
def test_an_integer_sum_in_a_separable_block_is_not_zeroed(module, estimator):
    """E[float(Σ z_i)] = Σ σ(l_i + t), ∂t = Σ σ'(l_i + t); it was 0 and 0."""
    obj = getattr(module, f"int_sum_{estimator}")(L)
    _, f, params, inputs = backend(obj)
    keys = jax.random.split(jax.random.PRNGKey(3), 20_000)
    values, grads = run_once(jax.vmap(lambda k: jax.value_and_grad(f)(params, k, inputs)), keys)
    s = jax.nn.sigmoid(L)
    z = 0.0 if estimator == "enum" else 5.0  # enum of a separable block is exact
    assert check(values, s.sum(), z=z, atol=1e-5, name="value")
    assert check(grads[f"int_sum_{estimator}.t"], (s * (1 - s)).sum(), z=z, atol=1e-5, name="t")


# ---------------------------------------------------------------- defect 11: baselines


@pytest.mark.parametrize("name", ["shared_baseline", "shared_baseline_indirectly"])
def test_a_baseline_reading_a_parameter_used_elsewhere_is_rejected(module, name):
    with pytest.raises(PPLError, match="baseline.*th.*also uses elsewhere") as info:
        getattr(module, name)().value_and_grad(jax.random.PRNGKey(0))
    assert info.value.line is not None and "reinforce(baseline=" in str(info.value)


def test_a_baseline_of_its_own_parameter_is_fitted_without_bias(module):
    """E[x² + θ] = θ² + 1 + θ: ∂θ = 2θ + 1; the baseline 2·bl gets (E[ℓ] − b)·2."""
    _, f, params, inputs = backend(module.own_baseline())
    keys = jax.random.split(jax.random.PRNGKey(4), 20_000)
    _, grads = run_once(jax.vmap(lambda k: jax.value_and_grad(f)(params, k, inputs)), keys)
    th = 0.5
    assert check_all(grads, {"own_baseline.th": 2 * th + 1,
                             "own_baseline.bl": 2.0 * (th * th + 1 + th - 0.0)})


# ---------------------------------------------------------------- defect 13: traced if


GRID = jnp.linspace(-12.0, 12.0, 48_001)


def _normal_expect(h, mean):
    """E[h(x)] for x ~ N(mean, 1) by quadrature on a fixed grid (h may jump)."""
    w = jnp.exp(-0.5 * (GRID - mean) ** 2) / jnp.sqrt(2 * jnp.pi) * (GRID[1] - GRID[0])
    return jnp.sum(w * h(GRID))


@pytest.mark.parametrize("name", ["if_in_plate", "if_after_enum"])
def test_a_batched_traced_if_is_differentiable_and_unbiased(module, name):
    """The condition varies over a plate with a draw (the untaken branch's sqrt of a
    negative must not make the gradient NaN), or follows an enumerated choice."""
    obj = getattr(module, name)()
    _, f, params, inputs = backend(obj)
    keys = jax.random.split(jax.random.PRNGKey(5), 20_000)
    values, grads = run_once(jax.vmap(lambda k: jax.value_and_grad(f)(params, k, inputs)), keys)

    def exact(u):
        if name == "if_in_plate":
            return 3 * _normal_expect(
                lambda x: jnp.where(x > 0, jnp.sqrt(jnp.abs(x)) * u, -x), u)
        p = jax.nn.sigmoid(u)
        return p * u * u - (1 - p) * u

    value, grad = jax.value_and_grad(exact)(jnp.float32(0.3))
    assert check(values, value, name="value")
    assert check(grads[f"{name}.t"], grad, name="t")


# ---------------------------------------------------------------- defect 13: float64


@pytest.mark.parametrize("name", [
    "loop_reinforce", "int_sum_enum", "mixture_enum"])
def test_adev_runs_with_x64(name):
    with jax.enable_x64(True):
        m = ppl.compile(SOURCE)
        if name == "loop_reinforce":
            obj = m.loop_reinforce()
        elif name == "int_sum_enum":
            obj = m.int_sum_enum(L)
        else:  # the mixture's ELBO with enum: its separable block's weights are float64
            import test_separable

            obj = test_separable.elbo(ppl.compile(test_separable.SOURCE), "enum")
        value, grads = obj.value_and_grad(jax.random.PRNGKey(0), obj.init(jax.random.PRNGKey(0)))
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads.values())


# ---------------------------------------------------------------- rejections


@pytest.mark.parametrize("name,message", [("loop_in_plate", "for loop with random choices inside a plate, inside "
                                           "'expect', is unrolled \\(up to 64 steps\\)")])
def test_what_adev_cannot_do_is_a_ppl_error(module, name, message):
    """Once NotImplementedError tracebacks; now errors at the user's line."""
    obj = getattr(module, name)()
    with pytest.raises(PPLError, match=message) as info:
        obj.value_and_grad(jax.random.PRNGKey(0), obj.init(jax.random.PRNGKey(0)))
    assert info.value.line is not None


# ---------------------------------------------------------------- defect 2, found again here


def test_enum_gradient_at_logits_zero(module):
    """Found choosing this file's logits: at l_i + t = 0 enum's gradient is σ'(0)·2."""
    obj = module.int_sum_enum(np.zeros(4, np.float32))
    _, grads = obj.value_and_grad(jax.random.PRNGKey(0), obj.init(jax.random.PRNGKey(0)))
    np.testing.assert_allclose(grads["int_sum_enum.t"], 4 * 0.25, rtol=1e-5)


LITERAL_PLATES = """
gen f() { u ~ normal(0.0, 1.0) }
objective direct(n: int) { return expect { plate k in n { u ~ normal(0.0, 1.0) }; return (u[1] - u[0]) ** 2 } }
objective coins(n: int) { return expect { plate k in n { b ~ bernoulli(0.5) with reinforce }; return float((b[1] - b[0]) ** 2) } }
objective through_sim(n: int) { return expect { plate k in n { (t, l) = sim(f()) }; return (t["u"][1] - t["u"][0]) ** 2 } }
"""


@pytest.mark.parametrize("name, exact", [("direct", 2.0), ("coins", 0.5), ("through_sim", 2.0)])
def test_choices_in_a_plate_with_literal_parameters_are_independent(name, exact):
    """A choice in a plate whose parameters are all literals is one independent draw per
    element (once it was one draw broadcast over the plate: iwelbo's particles from a
    parameter-free proposal were all equal, and its value was the ELBO's)."""
    m = ppl.compile(LITERAL_PLATES)
    obj = getattr(m, name)(3)
    values, _ = sample_estimates(obj, {}, 20_000)
    assert check(values[:, None], [exact], name=name)
