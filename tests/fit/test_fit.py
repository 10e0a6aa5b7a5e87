"""ppl.fit: convergence, minibatch scaling, NaN handling, interrupts, resume, sharding.

Assertions are statistical (means within standard errors) or exact identities
of the run's state (a resumed run equals an uninterrupted one), never sampled
floats under a fixed key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ppl
from ppl import fitting as fit_module

SOURCE = """
gen model() { z ~ normal(0.0, 1.0); x ~ normal(z, 1.0) }
gen guide() { param mu: real = 0.0; param s: real<lower=0> = 1.0; z ~ normal(mu, s) }
gen reg(x: real[N]) {
    w ~ normal(0.0, 1.0)
    plate i in N { y ~ normal(w * x[i], 0.5) }
}
gen reg_guide() { param m: real = 0.0; param s: real<lower=0> = 0.5; w ~ normal(m, s) }
gen g() { param a: real = 0.0; z ~ normal(a, 1.0) }
objective blowup(q: gen) {
    param t: real = 0.0
    return expect { (tr, l) = sim(q); return t + 0.0 * log(2.0 - t) }
}
"""


@pytest.fixture(scope="module")
def m():
    return ppl.compile(SOURCE)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n).astype(np.float32)
    y = (0.7 * x + 0.5 * rng.normal(size=n)).astype(np.float32)
    return {"x": x, "y": y}


def test_fit_reaches_the_exact_posterior(m):
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    schedule = optax.cosine_decay_schedule(0.05, 1500)  # a decaying step settles the iterate
    result = ppl.fit(obj, steps=1500, optimizer=optax.adam(schedule), progress=False)
    c = result.constrained_params
    # The posterior is N(1, 1/2); the ELBO's optimum is the posterior itself.
    assert abs(float(c["guide.mu"]) - 1.0) < 0.05
    assert abs(float(c["guide.s"]) - np.sqrt(0.5)) < 0.05
    assert result.status == "completed" and result.steps == 1500
    assert result.history.shape == (1500,)
    # The history is the objective (maximised): later steps are higher on average.
    assert result.history[-200:].mean() > result.history[:50].mean()


def test_minibatch_objective_is_unbiased_for_the_full_data_objective(m, data):
    build = lambda b: ppl.stdlib.elbo(m.reg(b["x"]) | {"y": b["y"]}, m.reg_guide())  # noqa: E731
    batcher = fit_module.Batcher(build, data, 40)
    full = ppl.stdlib.elbo(m.reg(data["x"]) | {"y": data["y"]}, m.reg_guide())
    params = full.init(jax.random.PRNGKey(0))
    full_step = full.compiled_value_and_grad()
    n = 4000
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    v_mini, g_mini = jax.jit(jax.vmap(lambda k: batcher(params, k)))(keys)
    v_full, g_full = jax.jit(jax.vmap(lambda k: full_step(params, k)))(keys)
    for a, b in [(v_mini, v_full)] + [(g_mini[p], g_full[p]) for p in g_full]:
        se = np.sqrt(np.var(a) / n + np.var(b) / n)
        assert abs(float(np.mean(a) - np.mean(b))) < 5 * se + 1e-6


def test_minibatch_fit_matches_full_data_fit(m, data):
    build = lambda b: ppl.stdlib.elbo(m.reg(b["x"]) | {"y": b["y"]}, m.reg_guide())  # noqa: E731
    r = ppl.fit(build, data=data, batch_size=50, steps=1500,
                optimizer=optax.adam(optax.cosine_decay_schedule(0.05, 1500)), progress=False)
    prec = 1 + (data["x"] ** 2).sum() / 0.25
    mean = (data["x"] * data["y"]).sum() / 0.25 / prec
    assert abs(float(r.constrained_params["reg_guide.m"]) - mean) < 0.05


def test_non_finite_objective_stops_with_the_last_good_state(m):
    obj = m.blowup(m.g())
    # The gradient is 1 until t passes 2, where log(2 - t) (times 0) makes everything NaN.
    result = ppl.fit(obj, steps=200, optimizer=optax.sgd(0.3), progress=False,
                     params={"blowup.t": jnp.float32(0.0), "g.a": jnp.float32(0.0)})
    assert result.status == "failed"
    assert "not finite at step" in result.message
    assert result.steps < 200
    assert np.all(np.isfinite(result.history))
    assert all(np.all(np.isfinite(np.asarray(v))) for v in result.params.values())
    # Steps 0..6 evaluate t = 0, 0.3, ..., 1.8 (finite); step 7 evaluates t = 2.1 (NaN).
    np.testing.assert_allclose(float(result.params["blowup.t"]), 1.8, rtol=1e-5)
    # The state is that step 6 was evaluated at, so the history holds steps 0..5.
    assert result.steps == len(result.history) == 6 and "step 7" in result.message


def test_interrupt_returns_the_result_so_far(m, monkeypatch):
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    calls = {"n": 0}
    real = fit_module.save_checkpoint

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "save_checkpoint", interrupting)
    result = ppl.fit(obj, steps=1000, chunk=100, checkpoint_every=100, progress=False,
                     checkpoint=os.path.join(os.environ.get("TMPDIR", "/tmp"), "ppl-int.pkl"))
    assert result.status == "interrupted"
    assert result.steps == 200 and len(result.history) == 200


def test_resume_continues_exactly_as_an_uninterrupted_run(m, tmp_path):
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    key = jax.random.PRNGKey(7)
    whole = ppl.fit(obj, steps=300, key=key, chunk=64, progress=False)
    path = str(tmp_path / "ckpt.pkl")
    first = ppl.fit(obj, steps=130, key=key, chunk=64, progress=False, checkpoint=path)
    assert first.steps == 130
    # From the file, and from the first run's result itself.
    for resume in (path, first):
        resumed = ppl.fit(obj, steps=300, key=key, chunk=64, progress=False, resume=resume)
        assert resumed.steps == 300
        np.testing.assert_allclose(resumed.history, whole.history, rtol=1e-5, atol=1e-5)
        for p in whole.params:
            np.testing.assert_allclose(resumed.params[p], whole.params[p], rtol=1e-5, atol=1e-6)
    with pytest.raises(ppl.DataError, match="a checkpoint's path or a FitResult, not dict"):
        ppl.fit(obj, steps=300, key=key, progress=False, resume={"params": first.params})


def test_early_stopping_on_a_flat_objective(m):
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    result = ppl.fit(obj, steps=20000, optimizer=optax.adam(0.05), progress=False,
                     patience=3, window=100, min_delta=0.01)
    assert result.status == "stopped early"
    assert result.steps < 20000


def test_progress_is_off_under_ci(m, monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    ppl.fit(obj, steps=50, progress=None)
    assert capsys.readouterr().err == ""
    assert fit_module._progress_bar(10, 0, None) is None


def test_result_save_load_and_diagnostics(m, tmp_path):
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    result = ppl.fit(obj, steps=100, progress=False)
    path = str(tmp_path / "result.pkl")
    result.save(path)
    back = ppl.FitResult.load(path, objective=obj)
    np.testing.assert_array_equal(back.history, result.history)
    for p in result.params:
        np.testing.assert_array_equal(np.asarray(back.params[p]), np.asarray(result.params[p]))
    snr = result.gradient_snr(estimates=32)
    assert set(snr) == {"guide.mu", "guide.s"} and all(v >= 0 for v in snr.values())
    assert "100 steps" in repr(result)


def test_plot_writes_a_png(m, tmp_path):
    pytest.importorskip("matplotlib")
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    result = ppl.fit(obj, steps=100, progress=False)
    path = result.plot(str(tmp_path / "objective.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_minibatch_errors_are_clear(m, data):
    build = lambda b: ppl.stdlib.elbo(m.reg(b["x"]) | {"y": b["y"]}, m.reg_guide())  # noqa: E731
    with pytest.raises(ppl.DataError, match="batch_size must be between"):
        ppl.fit(build, data=data, batch_size=10_000, steps=1, progress=False)
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    with pytest.raises(ppl.DataError, match="function from a batch"):
        ppl.fit(obj, data=data, batch_size=10, steps=1, progress=False)


SHARDED = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, numpy as np, ppl
    assert len(jax.devices()) == 4
    m = ppl.compile('''
    gen reg(x: real[N]) { w ~ normal(0.0, 1.0); plate i in N { y ~ normal(w * x[i], 0.5) } }
    gen reg_guide() { param m: real = 0.0; param s: real<lower=0> = 0.5; w ~ normal(m, s) }''')
    rng = np.random.default_rng(0)
    x = rng.normal(size=256).astype(np.float32)
    y = (0.7 * x + 0.5 * rng.normal(size=256)).astype(np.float32)
    build = lambda b: ppl.stdlib.elbo(m.reg(b["x"]) | {"y": b["y"]}, m.reg_guide())
    a, b = [ppl.fit(build, data={"x": x, "y": y}, batch_size=64, steps=100, progress=False,
                    shard=s) for s in (True, False)]
    np.testing.assert_allclose(a.history, b.history, rtol=1e-4, atol=1e-3)
    for p in a.params:
        np.testing.assert_allclose(a.params[p], b.params[p], rtol=1e-4, atol=1e-5)
    print("sharded ok")
""")


def test_sharded_fit_equals_unsharded_on_four_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sharded ok" in out.stdout


def test_effective_sample_size_grows_as_the_family_fits(m):
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    before = ppl.fit(obj, steps=1, progress=False)
    schedule = optax.cosine_decay_schedule(0.05, 1500)
    after = ppl.fit(obj, steps=1500, optimizer=optax.adam(schedule), progress=False)
    ess_before = before.effective_sample_size(draws=2000)
    ess_after = after.effective_sample_size(draws=2000)
    # The family contains the exact posterior, so a fitted one is a near-perfect sampler.
    assert 0 < ess_before < 0.8 * 2000
    assert ess_after > 0.95 * 2000


def test_epochs_and_per_datapoint_objectives(m, data):
    build = lambda b: ppl.stdlib.elbo(m.reg(b["x"]) | {"y": b["y"]}, m.reg_guide())  # noqa: E731
    by_epochs = ppl.fit(build, data=data, batch_size=40, epochs=3, progress=False)
    assert by_epochs.steps == 3 * 10  # 400 points in batches of 40
    summed = ppl.fit(build, data=data, batch_size=40, steps=200, progress=False)
    averaged = ppl.fit(build, data=data, batch_size=40, steps=200, progress=False,
                       per_datapoint=True)
    # The same runs of random numbers: the averaged history is the summed one over N.
    n = len(data["x"])
    np.testing.assert_allclose(averaged.history[:1], summed.history[:1] / n, rtol=1e-5)
    with pytest.raises(ppl.DataError, match="steps= or epochs="):
        ppl.fit(build, data=data, batch_size=40, steps=10, epochs=1, progress=False)


def test_several_estimates_per_step_average_independent_estimates(m):
    """fit(estimates=E) averages E independent estimates: at fixed parameters (a zero step)
    the objective's per-step variance falls by E, and its mean stays the objective's."""
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    frozen = optax.sgd(0.0)
    one = ppl.fit(obj, steps=2000, optimizer=frozen, progress=False).history
    many = ppl.fit(obj, steps=2000, optimizer=frozen, progress=False, estimates=16).history
    ratio = one.var() / many.var()
    assert 11 < ratio < 23, ratio
    assert abs(one.mean() - many.mean()) < 5 * np.sqrt(one.var() / 2000 + many.var() / 2000)
    # and the first step's gradient is the mean of the 16 estimates it drew
    p0 = obj.init(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(3)
    stepped = ppl.fit(obj, steps=1, optimizer=optax.sgd(1.0), key=key, params=p0,
                      progress=False, estimates=16).params
    keys = jax.random.split(jax.random.fold_in(key, 0), 16)
    grads = [obj.value_and_grad(jax.random.fold_in(k, 0), p0)[1] for k in keys]
    for path in p0:
        mean = np.mean([g[path] for g in grads])
        np.testing.assert_allclose(stepped[path], p0[path] + mean, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_estimates_must_be_a_positive_integer(m, bad):
    obj = ppl.stdlib.elbo(m.model() | {"x": 2.0}, m.guide())
    with pytest.raises(ppl.DataError, match="estimates"):
        ppl.fit(obj, steps=1, estimates=bad, progress=False)
