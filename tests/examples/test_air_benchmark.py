"""The AIR benchmark (examples/benchmarks/air.py) runs, and its Pyro and NumPyro
implementations are the ppl example's AIR: at one point (the same parameters and
choices) their log joint and log family density equal ppl's, and their spatial
transformers equal ppl's builtin. Timings are never asserted.

Skipped where torch or Pyro is not installed (the benchmark's optional extra).
"""

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("pyro")
pytest.importorskip("numpyro")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "benchmarks" / "air.py"

if not (ROOT / "examples" / "air" / "air.py").exists():
    pytest.skip("examples/air/air.py (the ppl side) is not there", allow_module_level=True)


@pytest.fixture(scope="module")
def quick_run():
    spec = importlib.util.spec_from_file_location("air_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # T = 2: the second step sees both gates (present before, absent before).
    return bench.main(["--quick", "--steps", "2"])


def test_quick_run_times_every_implementation(quick_run):
    (row,) = quick_run["rows"]
    assert row["objective"] == "reinforce"
    for name in ("ppl", "pyro", "numpyro"):
        assert row[f"{name}_ms"] > 0 and math.isfinite(row[f"{name}_ms"])


@pytest.mark.parametrize("peer", ["numpyro", "pyro"])
def test_log_densities_equal_ppl_at_the_same_point(quick_run, peer):
    check = quick_run["equivalence"]
    for density in ("log_joint", "log_guide"):
        ours, theirs = check[f"ppl_{density}"], check[f"{peer}_{density}"]
        # float32 sums of ~4000 terms: agree to ~1e-6 relative, where a wrong network,
        # parameter or gate would be off by whole nats.
        assert theirs == pytest.approx(ours, rel=1e-5, abs=1e-3), density


def test_the_check_sees_a_wrong_network(quick_run):
    # A negative control: the model with the row and column shifts swapped is far off.
    check = quick_run["equivalence"]
    wrong, ours = check["numpyro_log_joint_transposed"], check["ppl_log_joint"]
    assert abs(wrong - ours) > 100 * max(1e-3, 1e-5 * abs(ours))


@pytest.mark.parametrize("peer", ["numpyro", "pyro"])
def test_spatial_transformers_equal_ppl_builtin(quick_run, peer):
    assert quick_run["equivalence"][f"{peer}_transformer_err"] < 1e-5
