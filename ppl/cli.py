"""The ``ppl`` command line: check programs, fit objectives, sample, look at the IR.

    $ ppl check examples/coin.ppl
    examples/coin.ppl: ok (3 declarations: gen coin, gen coin_guide, objective fit_coin)
    $ ppl fit examples/coin.ppl --objective fit_coin --data examples/coin_flips.csv \\
          --steps 2000 --lr 0.05 --out runs/coin
    $ ppl sample examples/coin.ppl --entry coin_guide --params runs/coin
    $ ppl ir examples/coin.ppl --entry coin --args "[10]" --after lower
    $ ppl ir examples/coin.ppl --entry fit_coin --args "[[1, 0, 1]]" --after adev

``main(argv)`` parses the arguments, runs one subcommand and returns the exit
status (``python -m ppl`` and the ``ppl`` script both call it):

- 0: success;
- 1: a program (or the data given to it) has errors, printed to stderr as
  the same rendered diagnostics ``ppl.PPLError`` carries, never a traceback;
- 2: the command line itself is wrong (unknown option, pass or entry, or
  ``--args`` that is not a Python literal);
- 3: ``ppl fit`` stopped because the objective or its gradient was not
  finite (the run directory holds the last good state);
- 130: interrupted (Ctrl-C); ``ppl fit`` first writes what it has.

Arguments (``--args``, ``--arg``) are Python literals: ints and bools are
static, floats and nested lists of numbers are arrays, and a *string* is a
generative function written as a call, ``'coin(10)'`` or
``"coin(3) | {'flips': [1, 0, 1]}"`` (conditioned on observations), bound
in the program being run.

    >>> main(["check", "examples/coin.ppl"])  # doctest: +SKIP
    examples/coin.ppl: ok (3 declarations: gen coin, gen coin_guide, objective fit_coin)
    0
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import pickle
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from .arguments import (UsageError, describe_value, match_arguments, parse_arguments,
                        parse_assignment, resolve, signature)
from .compiler import passes
from .compiler.diagnostics import DataError, Diagnostic, PPLError, did_you_mean
from .compiler.ir import Program, format_program
from .compiler.types import tree_leaves
from .datafiles import _read_npz, read_data

# The stages `ppl ir --after` accepts: the IR as lowered, then after each pass,
# then (objectives only) after the adev pass settles each draw's gradient estimator.
IR_STAGES: list[str] = list(passes.OBJECTIVE_PASS_NAMES)

USAGE_ERROR = 2     # argparse's own exit status for a bad command line
FIT_FAILED = 3      # `ppl fit`: the objective or its gradient was not finite
INTERRUPTED = 130   # Ctrl-C (128 + SIGINT)

OPTIMIZERS = ("adam", "sgd", "adagrad", "rmsprop")

DESCRIPTION = """\
ppl: a probabilistic programming language with programmable variational inference.

Check .ppl programs, fit their objectives to data, draw from generative
functions, and inspect the intermediate representation (IR) the compiler
produces for them."""

EPILOG = """\
examples:
  ppl check examples/*.ppl
  ppl fit examples/coin.ppl --objective fit_coin --data examples/coin_flips.csv \\
      --steps 2000 --lr 0.05 --out runs/coin
  ppl sample examples/coin.ppl --entry coin_guide --params runs/coin
  ppl ir examples/coin.ppl --entry coin --args "[10]" --after lower
  ppl ir examples/coin.ppl --entry fit_coin --args "[[1, 0, 1]]" --after adev

exit status: 0 on success, 1 when a program or its data has errors (shown as
ppl diagnostics on stderr), 2 for a bad command line, 3 when a fit failed (a
non-finite objective or gradient), 130 when interrupted."""

ARGS_HELP = """\
arguments (--args, --arg) are Python literals: ints and bools are static (sizes,
flags); floats and nested lists of numbers are arrays; a string is a generative
function of the program written as a call, e.g. 'coin(10)' or 'coin_guide()', or
conditioned on observations: "coin(3) | {'flips': [1, 0, 1]}"."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppl", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check", help="parse and check programs, reporting every error",
        description="Parse and check each FILE: syntax, names, arities, distributions and "
                    "estimators. Prints 'FILE: ok (...)' for a good file, and the rendered "
                    "diagnostics on stderr for a bad one.",
        epilog="exit status: 0 if every file is ok, 1 if any has errors.")
    check.add_argument("files", nargs="+", metavar="FILE", help="a .ppl source file")
    check.set_defaults(run=run_check)

    _add_fit_parser(commands)
    _add_sample_parser(commands)

    ir = commands.add_parser(
        "ir", help="print the IR of a declaration after a compiler pass",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Specialise the declaration NAME of FILE to the arguments ARGS and print "
                    "its IR:\nfor a gen, the IR of its simulate entry (draw every choice and "
                    "return the trace\nand its log density); for a fn, the IR of calling it; "
                    "for an objective, the IR\nof its value (an `expect` region, and after "
                    "the adev pass, each draw's estimator).",
        epilog="passes, in pipeline order:\n"
               "  lower      the IR as traced from the source, specialised to ARGS\n"
               "  inline     calls to generative functions inlined under their addresses\n"
               "  addresses  traces and observations checked against what each model draws\n"
               "  expand     sim and density expanded into draws and log densities\n"
               "  simplify   forwarding and dead-code elimination (the final IR of a gen or fn)\n"
               "  unroll     (objectives) inside expect, for loops with enum or mvd choices\n"
               "             unrolled, so a choice's continuation is the rest of the block\n"
               "  adev       (objectives) each draw's gradient estimator settled and checked;\n"
               "             the default for an objective\n\n"
               + ARGS_HELP + "\n\nexamples:\n"
               "  ppl ir examples/coin.ppl --entry coin --args \"[10]\" --after lower\n"
               "  ppl ir examples/coin.ppl --entry fit_coin --args \"[[1, 0, 1]]\" --after adev\n"
               "  ppl ir examples/coin.ppl --entry elbo --args \"['coin(3) | {\\\"flips\\\": "
               "[1, 0, 1]}', 'coin_guide()']\"")
    ir.add_argument("file", metavar="FILE", help="a .ppl source file")
    ir.add_argument("--entry", "-e", metavar="NAME",
                    help="the declaration to show: a gen, fn or objective of FILE, or a standard "
                         "objective such as elbo (default: the file's only gen)")
    ir.add_argument("--args", "-a", metavar="ARGS", default="[]", dest="arguments",
                    help="its arguments, as a Python literal list (or a dict by name); "
                         "e.g. \"[10]\", \"[[0.5, 1.5], 3]\" or \"['coin(10)', 'coin_guide()']\" "
                         "(default: [])")
    ir.add_argument("--after", "-p", metavar="PASS", choices=IR_STAGES, default=None,
                    help=f"stop after this pass, one of: {', '.join(IR_STAGES)} "
                         "(default: the whole pipeline)")
    ir.set_defaults(run=run_ir)
    return parser


def _add_fit_parser(commands) -> None:
    fit = commands.add_parser(
        "fit", help="fit an objective of a program to data (variational inference)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Maximise the objective NAME of FILE with ppl.fit. Its arguments are taken "
                    "by name:\nfrom the columns or arrays of the data file (--data), and from "
                    "--arg NAME=VALUE.\nWrites to the run directory (--out):\n"
                    "  params.npz                constrained parameter values, by path\n"
                    "  params_unconstrained.npz  the optimiser's (unconstrained) values, for "
                    "`ppl sample --params`\n"
                    "  history.csv               step,objective for every step (maximised)\n"
                    "  objective.png             the objective per step (needs matplotlib: "
                    "pip install 'ppl[plot]')\n"
                    "  result.pkl                the FitResult (ppl.FitResult.load)\n"
                    "  checkpoint.pkl            the state to continue from with --resume\n"
                    "  run.json                  the settings the run was started with\n"
                    "  summary.txt               status, steps, time, final objective, parameters",
        epilog="data files:\n"
               "  .csv   a header row of names, then one row per data point; each column is an\n"
               "         array (int if every cell is an integer, else real)\n"
               "  .json  an object of name -> number or nested list of numbers\n"
               "  .npz   numpy arrays by name (np.savez)\n"
               "  Arrays are converted to the argument's declared type (real, int, bool) where\n"
               "  that loses nothing; names in a declared shape (int[N]) are bound from the data.\n\n"
               + ARGS_HELP + "\n\n"
               "With --batch-size B every step uses a random batch of B data points (rows),\n"
               "scaled so that the full-data objective stays unbiased; with several devices the\n"
               "batch is split across them. --steps is the total number of steps: with --resume\n"
               "the run continues from its checkpoint up to --steps.\n\n"
               "example:\n"
               "  ppl fit examples/coin.ppl --objective fit_coin --data examples/coin_flips.csv \\\n"
               "      --steps 2000 --lr 0.05 --out runs/coin\n\n"
               "exit status: 0 when the run completed (or stopped), 1 for errors in the program,\n"
               "its data or arguments, 3 when the objective or its gradient was not finite (the\n"
               "outputs hold the last good step), 130 when interrupted (the outputs hold the\n"
               "steps done; continue with --resume).")
    fit.add_argument("file", metavar="FILE", help="a .ppl source file")
    fit.add_argument("--objective", "-o", metavar="NAME",
                     help="the objective to maximise (default: the file's only objective)")
    fit.add_argument("--data", "-d", metavar="FILE",
                     help="a data file (.csv, .json or .npz) whose names are the objective's "
                          "arguments")
    fit.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", dest="extra",
                     help="another argument, as a Python literal (e.g. K=8, "
                          "q='coin_guide()'); repeatable")
    fit.add_argument("--steps", type=_positive_int, default=1000, metavar="N",
                     help="total number of optimisation steps (default: 1000)")
    fit.add_argument("--out", metavar="DIR", default=None,
                     help="the run directory (default: runs/NAME)")
    fit.add_argument("--lr", type=_positive_float, default=1e-2, metavar="RATE",
                     help="learning rate (default: 1e-2)")
    fit.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                     help="the optax optimiser (default: adam)")
    fit.add_argument("--batch-size", "-b", type=_positive_int, default=None, metavar="B",
                     help="fit over random minibatches of B data points (default: all the data "
                          "every step)")
    fit.add_argument("--seed", type=int, default=0, metavar="S",
                     help="random seed (default: 0)")
    fit.add_argument("--quiet", "-q", action="store_true",
                     help="no progress bar or start-up line (the progress bar is also off when "
                          "the CI environment variable is set)")
    fit.add_argument("--resume", action="store_true",
                     help="continue the run in DIR from its checkpoint.pkl")
    fit.set_defaults(run=run_fit)


def _add_sample_parser(commands) -> None:
    sample = commands.add_parser(
        "sample", help="draw traces of a generative function and summarise them",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Draw N independent traces of the gen NAME of FILE, applied to ARGS (with "
                    "fitted\nparameters from --params), and print the mean, standard deviation "
                    "and 5%, 50%\nand 95% quantiles of every address (arrays: their first "
                    "elements).",
        epilog=ARGS_HELP + "\n\n--params takes a run directory of `ppl fit`, its "
               "params_unconstrained.npz, its\nresult.pkl or checkpoint.pkl.\n\n"
               "examples:\n"
               "  ppl sample examples/coin.ppl --entry coin --args \"[10]\" -n 500\n"
               "  ppl sample examples/coin.ppl --entry coin_guide --params runs/coin "
               "--out draws.npz")
    sample.add_argument("file", metavar="FILE", help="a .ppl source file")
    sample.add_argument("--entry", "-e", metavar="NAME",
                        help="the gen to draw from (default: the file's only gen)")
    sample.add_argument("--args", "-a", metavar="ARGS", default="[]", dest="arguments",
                        help="its arguments, as a Python literal list (default: [])")
    sample.add_argument("--params", "-p", metavar="PATH",
                        help="fitted parameters: a `ppl fit` run directory, its "
                             "params_unconstrained.npz or result.pkl")
    sample.add_argument("-n", "--num", type=_positive_int, default=1000, metavar="N", dest="n",
                        help="number of draws (default: 1000)")
    sample.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    sample.add_argument("--out", metavar="FILE.npz",
                        help="also save the draws, stacked along a leading axis, by address")
    sample.set_defaults(run=run_sample)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        options = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error argparse has printed
        return _exit_code(stop)
    try:
        return options.run(options)
    except PPLError as err:
        print(err.render(), file=sys.stderr)
        return 1
    except UsageError as err:
        print(f"ppl {options.command}: error: {err}", file=sys.stderr)
        if err.help:
            print(f"  = help: {err.help}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"ppl {options.command}: interrupted", file=sys.stderr)
        return INTERRUPTED


# ---------------------------------------------------------------- ppl check


def run_check(options: argparse.Namespace) -> int:
    from .module import load

    status = 0
    for path in options.files:
        try:
            module = load(path)
        except PPLError as err:
            print(err.render(), file=sys.stderr)
            status = 1
            continue
        decls = module.program.decls
        listing = ", ".join(f"{d.kind} {d.name}" for d in decls)
        count = f"{len(decls)} declaration{'s' if len(decls) != 1 else ''}"
        print(f"{path}: ok ({count}{': ' + listing if decls else ''})")
    return status


# ---------------------------------------------------------------- ppl fit


def run_fit(options: argparse.Namespace) -> int:
    import jax
    import optax

    from .fitting import fit, load_checkpoint
    from .module import load

    extra = dict(parse_assignment(text) for text in options.extra)
    module = load(options.file)
    decl = _objective_declaration(module, options.objective, options.file)
    data = read_data(options.data) if options.data is not None else {}
    statics, arrays = match_arguments(module, decl, data, extra, options.data)
    if options.batch_size is not None and not any(v.ndim for v in arrays.values()):
        raise DataError(Diagnostic(
            "--batch-size needs data arrays to draw batches from",
            help=f"give the data with --data FILE; {decl.name} takes {signature(decl)}"))

    out = Path(options.out if options.out is not None else os.path.join("runs", decl.name))
    _make_directory(out)
    checkpoint = out / "checkpoint.pkl"
    start = 0
    if options.resume:
        if not checkpoint.is_file():
            raise DataError(Diagnostic(f"there is no run to resume in {out}: it has no "
                                       "checkpoint.pkl",
                                       help="run without --resume first, with the same --out"))
        start = int(load_checkpoint(str(checkpoint))["step"])
        _check_resumable(out, options)

    optimizer = getattr(optax, options.optimizer)(options.lr)
    if options.batch_size is not None:
        # Arrays with a leading axis are the data points to draw batches from; scalars stay.
        fixed = {**statics, **{k: v for k, v in arrays.items() if v.ndim == 0}}

        def objective(batch):
            return module.objective(decl.name, (), {**fixed, **batch})
        fit_data = {k: v for k, v in arrays.items() if v.ndim > 0}
        batch_size = options.batch_size
    else:
        objective = module.objective(decl.name, (), {**statics, **arrays})
        fit_data, batch_size = None, None

    _write_settings(out, options, decl.name)
    quiet = options.quiet or bool(os.environ.get("CI"))
    if not options.quiet:
        what = (f"{decl.name}({', '.join(describe_value(k, v) for k, v in {**statics, **arrays}.items())})")
        plan = (f"steps {start}..{options.steps}" if options.resume else f"{options.steps} steps")
        batches = f", batches of {options.batch_size}" if options.batch_size else ""
        devices = _batch_devices(options.batch_size)
        if devices > 1:
            batches += f" split across {devices} devices"
        print(f"ppl fit: {what} from {options.file}: {plan} of {options.optimizer} "
              f"(lr {options.lr:g}){batches}, seed {options.seed} -> {out}", flush=True)
    result = fit(objective, steps=options.steps, optimizer=optimizer,
                 key=jax.random.PRNGKey(options.seed), data=fit_data, batch_size=batch_size,
                 progress=not quiet, checkpoint=str(checkpoint), checkpoint_every=500,
                 resume=str(checkpoint) if options.resume else None)

    summary = write_run(out, result, start, options, decl.name)
    print(summary, end="")
    print(f"wrote {out}{os.sep}: {' '.join(sorted(p.name for p in out.iterdir() if p.is_file()))}")
    if result.status == "failed":
        return FIT_FAILED
    if result.status == "interrupted":
        print(f"interrupted at step {result.steps}; continue with --resume", file=sys.stderr)
        return INTERRUPTED
    return 0


def _batch_devices(batch_size: int | None) -> int:
    """How many devices ppl.fit splits each batch across (it does when they divide it)."""
    import jax

    n = len(jax.devices())
    return n if batch_size and n > 1 and batch_size % n == 0 else 1


def _objective_declaration(module, name: str | None, path: str):
    """The objective to fit: NAME among the file's (or the standard library's) objectives."""
    mine = [d for d in module.program.decls if d.kind == "objective"]
    listing = ", ".join(d.name for d in mine) or "none"
    if name is None:
        if len(mine) == 1:
            return mine[0]
        raise DataError(Diagnostic(
            f"{path} declares {'no objective' if not mine else 'several objectives'}; "
            "choose one with --objective NAME",
            help=f"its objectives: {listing}" if mine else
            "declare one, e.g. objective fit(y: real[N]) { return elbo(model(N) | {y: y}, guide()) }"))
    decl = module.lowerer.decls.get(name)
    if decl is None or decl.kind != "objective":
        what = f"'{name}' is a {decl.kind}, not an objective" if decl is not None else \
            f"{path} has no objective '{name}'"
        hint = did_you_mean(name, [d.name for d in mine])
        raise DataError(Diagnostic(what, help=(hint + " " if hint else "")
                                   + f"(the objectives of {path}: {listing})"))
    return decl


def _make_directory(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(Diagnostic(f"cannot make the run directory {out}: "
                                   f"{e.strerror or e}")) from None


def _write_settings(out: Path, options: argparse.Namespace, name: str) -> None:
    """run.json: how the run was started (read back by --resume)."""
    settings = {"file": options.file, "objective": name, "data": options.data,
                "args": options.extra, "optimizer": options.optimizer, "lr": options.lr,
                "batch_size": options.batch_size, "seed": options.seed, "steps": options.steps}
    (out / "run.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def _check_resumable(out: Path, options: argparse.Namespace) -> None:
    """A resumed run must keep its optimiser (the checkpoint holds that optimiser's state)."""
    try:
        before = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if before.get("optimizer") not in (None, options.optimizer):
        raise DataError(Diagnostic(
            f"the run in {out} used --optimizer {before['optimizer']}, and its checkpoint holds "
            f"that optimiser's state, so it cannot continue with {options.optimizer}",
            help=f"resume with --optimizer {before['optimizer']}, or start a new run in another --out"))


_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        print(f"warning: {message}", file=sys.stderr)


def write_run(out: Path, result, start: int, options: argparse.Namespace, name: str) -> str:
    """Write the run's files to ``out``; return the text of summary.txt."""
    constrained = {k: np.asarray(v) for k, v in result.constrained_params.items()}
    np.savez(out / "params.npz", **constrained)
    np.savez(out / "params_unconstrained.npz", **{k: np.asarray(v) for k, v in result.params.items()})
    history = np.asarray(result.history, np.float64)
    with open(out / "history.csv", "w", encoding="utf-8", newline="") as f:
        f.write("step,objective\n")
        f.writelines(f"{i},{v:.9g}\n" for i, v in enumerate(history))
    plot = out / "objective.png"
    if importlib.util.find_spec("matplotlib") is None:
        _warn_once("matplotlib", "matplotlib is not installed, so there is no objective.png: "
                                 "pip install 'ppl[plot]'")
    else:
        result.plot(str(plot))
    result.save(str(out / "result.pkl"))
    summary = format_summary(result, start, options, name)
    (out / "summary.txt").write_text(summary, encoding="utf-8")
    return summary


def format_summary(result, start: int, options: argparse.Namespace, name: str) -> str:
    done = result.steps - start
    rate = done / result.seconds if result.seconds > 0 else float("nan")
    tail = np.asarray(result.history[-50:], np.float64)
    tail = tail[np.isfinite(tail)]
    smoothed = f"{tail.mean():.6g}" if tail.size else "n/a"
    lines = [f"status:     {result.status}" + (f" ({result.message})" if result.message else ""),
             f"objective:  {name} from {options.file}"
             + (f", data {options.data}" if options.data else ""),
             f"steps:      {result.steps}" + (f" ({done} in this run, from step {start})"
                                              if start else ""),
             f"seconds:    {result.seconds:.2f} (including compilation)",
             f"steps/s:    {rate:.1f}",
             f"device:     {_device_text(options.batch_size)}",
             f"final objective: {smoothed} (mean of the last {len(tail)} steps; maximised)",
             "params (constrained):"]
    params = result.constrained_params
    width = max((len(k) for k in params), default=0)
    for path, value in params.items():
        lines.append(f"  {path:<{width}}  {_format_array(np.asarray(value))}")
    return "\n".join(lines) + "\n"


def _device_text(batch_size: int | None) -> str:
    import jax

    devices = jax.devices()
    kinds = sorted({d.platform for d in devices})
    text = f"{len(devices)} {'/'.join(kinds)} device{'s' if len(devices) != 1 else ''}"
    split = _batch_devices(batch_size)
    if batch_size:
        text += f"; batches of {batch_size}" + (f" split across {split}" if split > 1 else "")
    return text


def _format_array(value: np.ndarray) -> str:
    if value.ndim == 0:
        return f"{float(value):.6g}"
    return np.array2string(value, precision=4, separator=", ", threshold=8, edgeitems=3,
                           max_line_width=10_000)


# ---------------------------------------------------------------- ppl sample


def run_sample(options: argparse.Namespace) -> int:
    import jax

    from .module import load
    from .result import summarize

    values, keywords = parse_arguments(options.arguments)
    module = load(options.file)
    decl = _entry_declaration(module, options.entry, options.file)
    if decl.kind != "gen":
        gens = ", ".join(d.name for d in module.program.decls if d.kind == "gen") or "none"
        raise UsageError(f"'{decl.name}' is {'an' if decl.kind == 'objective' else 'a'} "
                         f"{decl.kind}; ppl sample draws from a gen",
                         help=f"the gens of {options.file}: {gens}")
    values, keywords = resolve(values, module), resolve(keywords, module)
    gen = getattr(module, decl.name)(*values, **keywords)
    params = load_params(options.params) if options.params else None
    if params is None and gen.init(jax.random.PRNGKey(0)):
        paths = ", ".join(gen.init(jax.random.PRNGKey(0)))
        raise DataError(Diagnostic(f"{gen!r} has parameters ({paths}), and no --params were given",
                                   help="give the run directory of a fit: --params runs/NAME"))
    traces = gen.sample(jax.random.PRNGKey(options.seed), params, n=options.n)
    stats = summarize(traces)
    source = f", params from {options.params}" if options.params else ""
    print(f"{gen!r}: {options.n} draws (seed {options.seed}{source})")
    print(format_table(stats, {a: np.shape(traces[a])[1:] for a in traces}), end="")
    if options.out:
        out = Path(options.out)
        if out.parent != Path(""):
            _make_directory(out.parent)
        np.savez(out, **{a: np.asarray(traces[a]) for a in traces})
        print(f"wrote {out}: {len(stats)} address{'es' if len(stats) != 1 else ''}, "
              f"each with a leading axis of {options.n} draws")
    return 0


def load_params(path: str) -> dict:
    """Unconstrained parameters by path from a `ppl fit` run: its directory, .npz or .pkl."""
    import jax.numpy as jnp

    p = Path(path)
    if p.is_dir():
        p = p / "params_unconstrained.npz"
        if not p.is_file():
            raise DataError(Diagnostic(f"{path} has no params_unconstrained.npz",
                                       help="give the directory `ppl fit --out` wrote"))
    if p.name == "params.npz":
        raise DataError(Diagnostic(
            f"{path} holds the constrained parameter values, for reading",
            help=f"give params_unconstrained.npz (beside it) or the run directory {p.parent}"))
    if p.suffix == ".npz":
        params = _read_npz(str(p))
    elif p.suffix == ".pkl":
        try:
            with open(p, "rb") as f:
                state = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
            raise DataError(Diagnostic(f"cannot read the parameters {path}: {e}")) from None
        if not isinstance(state, dict) or not isinstance(state.get("params"), dict):
            raise DataError(Diagnostic(f"{path} is not a result.pkl or checkpoint.pkl of ppl fit"))
        params = state["params"]
    else:
        raise DataError(Diagnostic(f"cannot read parameters from {path}",
                                   help="give a `ppl fit` run directory, its "
                                        "params_unconstrained.npz or result.pkl"))
    return {k: jnp.asarray(v) for k, v in params.items()}


def format_table(stats: dict, shapes: dict, show: int = 4) -> str:
    """``summarize`` as a table: one row per address (arrays: their first ``show`` elements)."""
    columns = ["mean", "sd", "q5", "q50", "q95"]
    rows: list[list[str]] = []
    for address, row in stats.items():
        shape = tuple(shapes.get(address, ()))
        size = int(np.prod(shape)) if shape else 1
        if not shape:
            rows.append([address] + [f"{float(row[c]):.4g}" for c in columns])
            continue
        for flat in range(min(size, show)):
            index = np.unravel_index(flat, shape)
            label = f"{address}[{', '.join(map(str, index))}]"
            rows.append([label] + [f"{float(np.asarray(row[c])[index]):.4g}" for c in columns])
        if size > show:
            rows.append([f"{address}[...]", f"({size - show} more of {size}, shape "
                         f"{list(shape)})", "", "", "", ""])
    header = ["address"] + columns
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    # a "more of" note spans the number columns: do not let it widen them
    widths[1] = max([len(header[1])] + [len(r[1]) for r in rows if not r[1].startswith("(")])

    def line(cells):
        first = cells[0].ljust(widths[0])
        if cells[1].startswith("("):
            return f"{first}  {cells[1]}".rstrip()
        return "  ".join([first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    return "".join(line(r) + "\n" for r in [header] + rows)


# ---------------------------------------------------------------- ppl ir


def run_ir(options: argparse.Namespace) -> int:
    from .module import load

    values, keywords = parse_arguments(options.arguments)
    module = load(options.file)
    decl = _entry_declaration(module, options.entry, options.file, objectives=True)
    values, keywords = resolve(values, module), resolve(keywords, module)
    if options.after not in (None, *passes.PASS_NAMES) and decl.kind != "objective":
        raise UsageError(f"the {options.after} pass applies to objectives, and '{decl.name}' is "
                         f"a {decl.kind}",
                         help="for a gen or fn, the last stage is simplify (the default)")
    if decl.kind == "gen":
        program = getattr(module, decl.name)(*values, **keywords).ir(after=options.after)
    elif decl.kind == "fn":
        program = _fn_ir(module, decl.name, values, keywords, options.after)
    else:
        program = _objective_ir(module, decl.name, values, keywords, options.after)
    sys.stdout.write(format_program(program))
    return 0


def _entry_declaration(module, name: str | None, path: str, objectives: bool = False):
    decls = module.declarations
    if name is None:
        gens = [d for d in decls.values() if d.kind == "gen"]
        if len(gens) == 1:
            return gens[0]
        listing = ", ".join(f"{d.kind} {d.name}" for d in decls.values()) or "nothing"
        raise UsageError(f"{path} declares {listing}", help="choose one with --entry NAME")
    if name not in decls:
        # The standard library's objectives (elbo, iwelbo, ...) are entries too.
        std = module.lowerer.decls.get(name)
        if objectives and std is not None and std.kind == "objective":
            return std
        listing = ", ".join(f"{d.kind} {d.name}" for d in decls.values()) or "nothing"
        hint = did_you_mean(name, decls)
        raise UsageError(f"{path} has no declaration '{name}'", help=hint or f"it declares: {listing}")
    return decls[name]


def _fn_ir(module, name: str, values: list, keywords: dict, after: str | None) -> Program:
    """The IR of calling the ``fn`` ``name`` on the arguments (inlined into an entry)."""
    from .entries import Inputs

    inputs = Inputs(module)
    args, kwargs, _ = inputs.call(tuple(values), dict(keywords))

    def emit(lowerer, builder):
        result = lowerer.inline_call(name, args, kwargs, None, builder)
        return [lowerer.as_atom(x, None) for x in tree_leaves(result)], None

    return module.entries.program("fn", inputs, emit, after=after)


def _objective_ir(module, name: str, values: list, keywords: dict, after: str | None) -> Program:
    """The IR of the objective ``name`` applied to the arguments, after a pass (default: adev)."""
    return module.objective(name, tuple(values), keywords).program(after=after)



# ---------------------------------------------------------------- arguments


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (x > 0 and math.isfinite(x)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return x


def _exit_code(stop: SystemExit) -> int:
    code = stop.code
    if code is None:
        return 0
    return code if isinstance(code, int) else USAGE_ERROR


def _version() -> str:
    from . import __version__

    return __version__


if __name__ == "__main__":  # pragma: no cover - `python -m ppl.cli`
    sys.exit(main())
