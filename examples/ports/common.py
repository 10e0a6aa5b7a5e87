"""What the ports of NumPyro's examples share: the command line, NumPyro's side of
each comparison, and the line counts of the README's table.

Each port marks its ppl code (model, family, inference) between ``# ppl:begin`` and
``# ppl:end`` and NumPyro's between ``# numpyro:begin`` and ``# numpyro:end``;
:func:`count_lines` counts the non-blank, non-comment lines of each, the same way.

>>> quick = parse_quick(["--quick"])
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np


def parse_quick(argv=None) -> bool:
    """``--quick``: the test suite's short run (few steps or draws, no NumPyro side)."""
    return "--quick" in (sys.argv[1:] if argv is None else argv)


def side_by_side(rows: dict, ours, theirs, label: str = "NumPyro") -> dict:
    """Print the posterior mean and sd of each quantity from ppl's draws and NumPyro's
    (``rows``: name -> function of a dict of draws giving a [draws] array) and return the
    largest difference of means in units of the pooled sd."""
    print(f"  {'':14} {'ppl mean':>9} {'sd':>7}   {label + ' mean':>13} {'sd':>7}")
    gaps = {}
    for name, of in rows.items():
        a, b = np.asarray(of(ours), np.float64), np.asarray(of(theirs), np.float64)
        print(f"  {name:14} {a.mean():9.3f} {a.std():7.3f}   {b.mean():13.3f} {b.std():7.3f}")
        gaps[name] = abs(a.mean() - b.mean()) / max(np.hypot(a.std(), b.std()), 1e-12)
    return gaps


def count_lines(path: str | Path) -> dict[str, int]:
    """Non-blank, non-comment lines between the ``# ppl:begin``/``end`` and
    ``# numpyro:begin``/``end`` markers of a port (a docstring line counts as a comment,
    and so do an import and a line that only closes brackets, ``}`` or ``)``)."""
    counts = {"ppl": 0, "numpyro": 0}
    region = None
    for line in Path(path).read_text().splitlines():
        marker = re.match(r"\s*# (ppl|numpyro):(begin|end)\b", line)
        if marker:
            region = marker.group(1) if marker.group(2) == "begin" else None
            continue
        stripped = line.strip()
        closing = re.fullmatch(r"[})\]]+[,:]?", stripped)
        if region and stripped and not closing and not stripped.startswith(
                ("#", '"""', "'''", "import ", "from ")):
            counts[region] += 1
    return counts


def print_summary(summary: dict, limit: int = 4) -> None:
    """NumPyro's ``mcmc.print_summary()`` for a :class:`ppl.NutsResult`'s ``summary``: a row
    per scalar (the first ``limit`` elements of each array-valued address)."""
    print(f"{'':>16} {'mean':>9} {'std':>9} {'5.0%':>9} {'50.0%':>9} {'95.0%':>9} "
          f"{'n_eff':>9} {'r_hat':>7}")
    for address, stats in summary.items():
        mean = np.asarray(stats["mean"])
        for index in list(np.ndindex(mean.shape))[:limit]:
            name = address + (str(list(index)) if index else "")
            cells = [np.asarray(stats[k])[index] for k in ("mean", "sd", "q5", "q50", "q95")]
            print(f"{name:>16} " + " ".join(f"{c:9.3f}" for c in cells)
                  + f" {np.asarray(stats['ess'])[index]:9.1f}"
                  + f" {np.asarray(stats['r_hat'])[index]:7.3f}")
