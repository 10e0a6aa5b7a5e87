"""``ppl fit``, ``ppl sample`` and ``ppl ir`` of objectives, in-process through ``ppl.cli.main``.

The coin example is fitted once (300 steps) and its run directory is shared
by the tests that read it; every other run is of a small normal model, which
compiles in a second or two. Assertions about fitted values are against the
exact conjugate posterior with a tolerance, never sampled floats.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import ppl
from ppl import cli
from ppl.cli import main, parse_arguments

ROOT = Path(__file__).resolve().parents[2]
COIN = str(ROOT / "examples" / "coin.ppl")
FLIPS = str(ROOT / "examples" / "coin_flips.csv")
OUTPUTS = ["params.npz", "params_unconstrained.npz", "history.csv", "result.pkl",
           "checkpoint.pkl", "run.json", "summary.txt"]
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

SMALL = """
gen line(x: real[N]) {
    w ~ normal(0.0, 1.0)
    plate i in N { y ~ normal(w * x[i], 0.5) }
}
gen line_guide() { param m: real = 0.0; param s: real<lower=0> = 1.0; w ~ normal(m, s) }
objective fit_line(x: real[N], y: real[N]) { return elbo(line(x) | {y: y}, line_guide()) }

gen point() { z ~ normal(0.0, 1.0); x ~ normal(z, 1.0) }
gen point_guide() { param mu: real = 0.0; z ~ normal(mu, 1.0) }
objective fit_point(x: real) { return elbo(point() | {x: x}, point_guide()) }

gen g() { param a: real = 0.0; z ~ normal(a, 1.0) }
objective blowup(q: gen) {
    param t: real = 0.0
    return expect { (tr, l) = sim(q); return t + 0.0 * log(2.0 - t) }
}
"""


def call(*argv: str) -> tuple[int, str, str]:
    """Run ``ppl ARGV`` in-process: (status, stdout, stderr); never a traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return status, out.getvalue(), err.getvalue()


def exact_coin_posterior() -> tuple[int, int]:
    flips = np.loadtxt(FLIPS, skiprows=1, dtype=np.int64)
    heads = int(flips.sum())
    return 2 + heads, 2 + flips.size - heads


def read_history(path: Path) -> list[tuple[int, float]]:
    with open(path / "history.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "objective"]
    return [(int(s), float(v)) for s, v in rows[1:]]


@pytest.fixture(scope="module")
def coin_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("coin") / "run"
    cli._WARNED.clear()  # the missing-matplotlib warning is given once a process
    status, stdout, stderr = call("fit", COIN, "--objective", "fit_coin", "--data", FLIPS,
                                  "--steps", "300", "--lr", "0.05", "--quiet", "--out", out)
    return status, stdout, stderr, out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    directory = tmp_path_factory.mktemp("small")
    (directory / "small.ppl").write_text(SMALL)
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = 0.7 * x + 0.5 * rng.normal(size=200)
    with open(directory / "line.csv", "w") as f:
        f.write("x,y\n" + "".join(f"{a:.5f},{b:.5f}\n" for a, b in zip(x, y)))
    np.savez(directory / "line.npz", x=x.astype(np.float32), y=y.astype(np.float32))
    (directory / "point.json").write_text('{"x": 2.0}')
    return directory


# ---------------------------------------------------------------- ppl fit: the coin


def test_fit_coin_writes_every_output(coin_run):
    status, stdout, stderr, out = coin_run
    assert status == 0, stderr
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    if HAVE_MATPLOTLIB:
        assert (out / "objective.png").read_bytes()[:4] == b"\x89PNG"
    else:
        assert "matplotlib" in stderr and not (out / "objective.png").exists()
    assert "status:     completed" in stdout and "coin_guide.a" in stdout
    history = read_history(out)
    assert [s for s, _ in history] == list(range(300))
    assert all(np.isfinite(v) for _, v in history)
    summary = (out / "summary.txt").read_text()
    for text in ("status:     completed", "steps:      300", "seconds:", "steps/s:",
                 "final objective:", "coin_guide.a", "coin_guide.b"):
        assert text in summary, text


def test_fit_coin_params_and_result(coin_run):
    _, _, _, out = coin_run
    params = np.load(out / "params.npz")
    assert sorted(params.files) == ["coin_guide.a", "coin_guide.b"]
    a, b = float(params["coin_guide.a"]), float(params["coin_guide.b"])
    assert a > 0 and b > 0
    unconstrained = np.load(out / "params_unconstrained.npz")
    np.testing.assert_allclose(np.exp(unconstrained["coin_guide.a"]), a, rtol=1e-5)
    # The ELBO's optimum is the exact conjugate posterior beta(2 + heads, 2 + tails).
    ea, eb = exact_coin_posterior()
    assert abs(a / (a + b) - ea / (ea + eb)) < 0.1
    result = ppl.FitResult.load(str(out / "result.pkl"))
    assert result.status == "completed" and result.steps == 300 and len(result.history) == 300
    np.testing.assert_allclose(result.history, [v for _, v in read_history(out)], rtol=1e-6)
    with open(out / "checkpoint.pkl", "rb") as f:
        assert pickle.load(f)["step"] == 300


def test_fit_resume_continues_the_run(coin_run, tmp_path):
    _, _, _, first = coin_run
    out = tmp_path / "resumed"
    shutil.copytree(first, out)
    status, stdout, stderr = call("fit", COIN, "--objective", "fit_coin", "--data", FLIPS,
                                  "--steps", "400", "--lr", "0.05", "--quiet", "--resume",
                                  "--out", out)
    assert status == 0, stderr
    history = read_history(out)
    assert [s for s, _ in history] == list(range(400))  # 300 + 100 more steps
    np.testing.assert_allclose([v for _, v in history[:300]],
                               [v for _, v in read_history(first)], rtol=1e-6)
    assert "steps:      400 (100 in this run, from step 300)" in (out / "summary.txt").read_text()
    assert ppl.FitResult.load(str(out / "result.pkl")).steps == 400


def test_sample_the_fitted_family(coin_run, tmp_path):
    _, _, _, run = coin_run
    draws = tmp_path / "draws.npz"
    status, stdout, stderr = call("sample", COIN, "--entry", "coin_guide", "--params", run,
                                  "-n", "400", "--out", draws)
    assert status == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("coin_guide(): 400 draws")
    assert lines[1].split() == ["address", "mean", "sd", "q5", "q50", "q95"]
    row = lines[2].split()
    assert row[0] == "p" and len(row) == 6
    mean, q5, q95 = float(row[1]), float(row[3]), float(row[5])
    assert 0 < q5 < mean < q95 < 1
    a, b = (float(np.load(run / "params.npz")[k]) for k in ("coin_guide.a", "coin_guide.b"))
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert abs(mean - a / (a + b)) < 5 * sd / np.sqrt(400)
    saved = np.load(draws)
    assert saved.files == ["p"] and saved["p"].shape == (400,)
    # The run directory, its params_unconstrained.npz, result.pkl and checkpoint.pkl
    # all give the same (unconstrained) parameters.
    given = [cli.load_params(str(p)) for p in (run, run / "params_unconstrained.npz",
                                               run / "result.pkl", run / "checkpoint.pkl")]
    for params in given[1:]:
        assert sorted(params) == sorted(given[0])
        for k in params:
            np.testing.assert_allclose(params[k], given[0][k])


# ---------------------------------------------------------------- ppl fit: errors


@pytest.mark.parametrize("contents, name, message", [
    ("flips\n1\nheads\n", "bad.csv", "'heads' in column 'flips' of"),
    ("flips,other\n1,0\n0\n", "ragged.csv", "has 1 cell, but the header names 2 columns"),
    ('{"flips": [1, 0,', "bad.json", "is not valid JSON"),
    ('{"flips": [[1, 0], [1]]}', "ragged.json", "not a number or a (rectangular) nested list"),
    ("not a zip", "bad.npz", "cannot read the data"),
    ("flips\n1\n", "data.txt", "the format is known by its extension"),
])
def test_fit_bad_data_file(tmp_path, contents, name, message):
    path = tmp_path / name
    path.write_text(contents)
    status, stdout, stderr = call("fit", COIN, "--data", path, "--out", tmp_path / "run")
    assert status == 1 and stdout == ""
    assert stderr.startswith("error: ") and message in stderr
    assert not (tmp_path / "run" / "params.npz").exists()


def test_fit_bad_csv_cell_is_shown_with_a_caret(tmp_path):
    path = tmp_path / "flips.csv"
    path.write_text("flips\n1\n0\n  heads \n")
    _, _, stderr = call("fit", COIN, "--data", path, "--out", tmp_path / "run")
    assert f"--> {path}:4:3" in stderr and "4 |   heads" in stderr and "^^^^^" in stderr


def test_fit_missing_data_file(tmp_path):
    status, _, stderr = call("fit", COIN, "--data", tmp_path / "none.csv", "--out", tmp_path)
    assert status == 1 and "cannot read the data" in stderr and "none.csv" in stderr


def test_fit_unknown_objective(tmp_path):
    status, stdout, stderr = call("fit", COIN, "--objective", "fit_con", "--data", FLIPS,
                                  "--out", tmp_path)
    assert status == 1 and stdout == ""
    assert "has no objective 'fit_con'" in stderr and "did you mean 'fit_coin'?" in stderr
    status, _, stderr = call("fit", COIN, "--objective", "coin", "--data", FLIPS, "--out", tmp_path)
    assert status == 1 and "'coin' is a gen, not an objective" in stderr


def test_fit_missing_and_unknown_names(tmp_path):
    data = tmp_path / "flip.csv"
    data.write_text("flip\n1\n0\n")
    status, stdout, stderr = call("fit", COIN, "--data", data, "--out", tmp_path / "run")
    assert status == 1 and stdout == ""
    # Both problems at once, pointing at the objective, listing what it takes and the data holds.
    assert "objective fit_coin has no argument 'flip'" in stderr
    assert "needs argument 'flips'" in stderr and "2 errors" in stderr
    assert "fit_coin takes (flips: int[N])" in stderr and "holds flip: int[2]" in stderr
    assert "did you mean 'flips'?" in stderr and "objective fit_coin(flips: int[N])" in stderr
    status, _, stderr = call("fit", COIN, "--out", tmp_path / "run")  # no data at all
    assert status == 1 and "needs argument 'flips'" in stderr and "--arg flips=VALUE" in stderr
    status, _, stderr = call("fit", COIN, "--data", FLIPS, "--arg", "K=3", "--out", tmp_path)
    assert status == 1 and "has no argument 'K' (given with --arg)" in stderr


def test_fit_usage_errors(tmp_path):
    status, _, stderr = call("fit", COIN, "--arg", "K", "--out", tmp_path)
    assert status == 2 and "--arg takes NAME=VALUE" in stderr
    status, _, stderr = call("fit", COIN, "--steps", "0")
    assert status == 2 and "positive integer" in stderr
    status, _, stderr = call("fit", COIN, "--optimizer", "lbfgs")
    assert status == 2 and "invalid choice" in stderr


def test_fit_resume_without_a_checkpoint(tmp_path):
    status, _, stderr = call("fit", COIN, "--data", FLIPS, "--resume", "--out", tmp_path / "new")
    assert status == 1 and "no run to resume" in stderr


def test_fit_resume_must_keep_the_optimizer(coin_run, tmp_path):
    _, _, _, first = coin_run
    out = tmp_path / "copy"
    shutil.copytree(first, out)
    status, _, stderr = call("fit", COIN, "--data", FLIPS, "--resume", "--optimizer", "sgd",
                             "--steps", "400", "--out", out)
    assert status == 1 and "used --optimizer adam" in stderr


# ---------------------------------------------------------------- ppl fit: small models


def test_fit_over_minibatches(small, tmp_path):
    out = tmp_path / "run"
    status, stdout, stderr = call("fit", small / "small.ppl", "--objective", "fit_line",
                                  "--data", small / "line.csv", "--batch-size", "20",
                                  "--steps", "400", "--lr", "0.05", "--optimizer", "rmsprop",
                                  "--seed", "3", "--quiet", "--out", out)
    assert status == 0, stderr
    assert "batches of 20" in (out / "summary.txt").read_text()
    # The exact posterior of w is normal; its mean is a ridge estimate.
    data = np.load(small / "line.npz")
    x, y = data["x"].astype(np.float64), data["y"].astype(np.float64)
    precision = 1.0 + (x ** 2).sum() / 0.25
    m = float(np.load(out / "params.npz")["line_guide.m"])
    assert abs(m - (x * y).sum() / 0.25 / precision) < 0.05
    # An .npz file gives the same arrays by name.
    status, _, stderr = call("fit", small / "small.ppl", "--objective", "fit_line",
                             "--data", small / "line.npz", "--steps", "50", "--quiet",
                             "--out", tmp_path / "npz")
    assert status == 0, stderr


def test_fit_json_scalar_data(small, tmp_path):
    out = tmp_path / "run"
    status, _, stderr = call("fit", small / "small.ppl", "--objective", "fit_point", "--data",
                             small / "point.json", "--steps", "600", "--lr", "0.05", "--quiet",
                             "--out", out)
    assert status == 0, stderr
    # x = 2 observed: the posterior of z is normal(1, 1/2).
    assert abs(float(np.load(out / "params.npz")["point_guide.mu"]) - 1.0) < 0.15


def test_fit_that_fails_exits_3_with_the_last_good_state(small, tmp_path):
    out = tmp_path / "run"
    status, stdout, stderr = call("fit", small / "small.ppl", "--objective", "blowup",
                                  "--arg", "q=g()", "--steps", "500", "--lr", "0.05", "--quiet",
                                  "--out", out)
    assert status == 3
    assert "not finite" in stderr and "status:     failed" in stdout
    t = float(np.load(out / "params.npz")["blowup.t"])
    assert np.isfinite(t) and t < 2.0  # log(2 - t) is finite at the last good step
    assert "failed" in (out / "summary.txt").read_text()
    assert all(np.isfinite(v) for _, v in read_history(out))


def test_fit_interrupted_writes_what_it_has_and_exits_130(small, tmp_path, monkeypatch):
    from ppl import fitting

    real = fitting._chunk_runner

    def interrupted_after_one_chunk(*args):
        run, calls = real(*args), []

        def chunk(*a):
            calls.append(1)
            if len(calls) > 1:
                raise KeyboardInterrupt
            return run(*a)
        return chunk

    monkeypatch.setattr(fitting, "_chunk_runner", interrupted_after_one_chunk)
    out = tmp_path / "run"
    status, stdout, stderr = call("fit", small / "small.ppl", "--objective", "fit_point",
                                  "--data", small / "point.json", "--steps", "1000", "--quiet",
                                  "--out", out)
    assert status == 130
    assert "interrupted at step 100" in stderr and "--resume" in stderr
    assert len(read_history(out)) == 100
    with open(out / "checkpoint.pkl", "rb") as f:
        assert pickle.load(f)["step"] == 100
    monkeypatch.setattr(fitting, "_chunk_runner", real)
    status, _, _ = call("fit", small / "small.ppl", "--objective", "fit_point", "--data",
                        small / "point.json", "--steps", "300", "--quiet", "--resume", "--out", out)
    assert status == 0 and len(read_history(out)) == 300


# ---------------------------------------------------------------- ppl sample, ppl ir


def test_sample_a_model_with_arguments(small, tmp_path):
    status, stdout, stderr = call("sample", small / "small.ppl", "--entry", "line",
                                  "--args", "[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]", "-n", "300")
    assert status == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == "line(<array>): 300 draws (seed 0)"
    labels = [line.split()[0] for line in lines[2:]]
    assert labels == ["w", "y[0]", "y[1]", "y[2]", "y[3]", "y[...]"]
    assert "(2 more of 6, shape [6])" in lines[-1]


def test_sample_errors(small, tmp_path):
    status, _, stderr = call("sample", COIN, "--entry", "coin_guide")
    assert status == 1 and "no --params were given" in stderr
    status, _, stderr = call("sample", COIN, "--entry", "fit_coin")
    assert status == 2 and "ppl sample draws from a gen" in stderr
    (tmp_path / "params.npz").write_bytes(b"")
    status, _, stderr = call("sample", COIN, "--entry", "coin_guide", "--params",
                             tmp_path / "params.npz")
    assert status == 1 and "params_unconstrained.npz" in stderr
    status, _, stderr = call("sample", COIN, "--entry", "coin_guide", "--params", tmp_path)
    assert status == 1 and "has no params_unconstrained.npz" in stderr


def test_ir_of_the_coin_objective_after_adev():
    status, stdout, stderr = call("ir", COIN, "--entry", "fit_coin", "--args", "[[1, 0, 1, 1]]",
                                  "--after", "adev")
    assert (status, stderr) == (0, "")
    assert "expect()" in stdout and "plate[size=4]" in stdout
    draws = [line for line in stdout.splitlines() if "draw[" in line]
    assert draws and all("estimator=" in line for line in draws)
    status, lowered, _ = call("ir", COIN, "--entry", "fit_coin", "--args", "[[1, 0, 1, 1]]",
                              "--after", "lower")
    assert status == 0 and "draw[" not in lowered and "density[callee=coin(n=4)" in lowered


def test_ir_of_a_standard_objective_with_gens_as_strings():
    status, stdout, stderr = call("ir", COIN, "--entry", "iwelbo", "--args",
                                  "['coin(3) | {\"flips\": [1, 0, 1]}', 'coin_guide()', 4]")
    assert (status, stderr) == (0, "")
    assert "plate[size=4]" in stdout and "estimator=reparam" in stdout


def test_gen_arguments_are_parsed_and_checked():
    values, _ = parse_arguments("['coin(10)', \"coin(3) | {'flips': [1, 0, 1]}\", 8]")
    spec, conditioned, k = values
    assert (spec.name, spec.args, k) == ("coin", (10,), 8)
    assert list(conditioned.observations) == ["flips"]
    assert conditioned.observations["flips"].dtype.name == "int32"
    for bad in ("['coin']", "['coin(x)']", "['1 + 2']", "[\"coin(3) | 4\"]"):
        with pytest.raises(cli.UsageError, match="names a generative function"):
            parse_arguments(bad)


def test_fit_help_documents_outputs_and_data():
    status, stdout, _ = call("fit", "--help")
    assert status == 0
    for text in ("--objective", "--data", "--batch-size", "--resume", "params.npz",
                 "history.csv", "objective.png", "checkpoint.pkl", ".csv", ".json", ".npz",
                 "'coin(10)'"):
        assert text in stdout, text
    status, stdout, _ = call("ir", "--help")
    assert status == 0 and "adev" in stdout and "'coin_guide()'" in stdout
