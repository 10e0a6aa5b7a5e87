"""The ``ppl`` command line: check programs and look at their IR.

    $ ppl check examples/coin.ppl
    examples/coin.ppl: ok (2 declarations: gen coin, gen coin_guide)
    $ ppl ir examples/coin.ppl --entry coin --args "[10]" --after lower

``main(argv)`` parses the arguments, runs one subcommand and returns the exit
status (``python -m ppl`` and the ``ppl`` script both call it):

- 0: success;
- 1: a program (or the data given to it) has errors, printed to stderr as
  the same rendered diagnostics ``ppl.PPLError`` carries, never a traceback;
- 2: the command line itself is wrong (unknown option, pass or entry, or
  ``--args`` that is not a Python literal).

    >>> main(["check", "examples/coin.ppl"])  # doctest: +SKIP
    examples/coin.ppl: ok (2 declarations: gen coin, gen coin_guide)
    0
"""

from __future__ import annotations

import argparse
import ast
import sys
from typing import Any, Sequence

import numpy as np

from .compiler import passes
from .compiler.diagnostics import PPLError, did_you_mean
from .compiler.ir import Program, format_program

# The stages `ppl ir --after` accepts: the IR as lowered, then after each pass.
# OBJECTIVES: the ADEV transformation of `expect` regions adds its stage
# ("adev") here, with objective entries in _objective_ir below.
IR_STAGES: list[str] = list(passes.PASS_NAMES)

USAGE_ERROR = 2  # argparse's own exit status for a bad command line

DESCRIPTION = """\
ppl: a probabilistic programming language with programmable variational inference.

Check .ppl programs and inspect the intermediate representation (IR) the
compiler produces for them."""

EPILOG = """\
examples:
  ppl check examples/*.ppl
  ppl ir examples/coin.ppl --entry coin --args "[10]"
  ppl ir examples/coin.ppl --entry coin --args "[10]" --after lower
  ppl ir examples/linear_regression.ppl --entry regression --args "[[0.0, 0.5, 1.0]]"

exit status: 0 on success, 1 when a program has errors (shown as ppl
diagnostics on stderr), 2 for a bad command line."""


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

    ir = commands.add_parser(
        "ir", help="print the IR of a declaration after a compiler pass",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Specialise the declaration NAME of FILE to the arguments ARGS and print "
                    "its IR:\nfor a gen, the IR of its simulate entry (draw every choice and "
                    "return the trace\nand its log density); for a fn, the IR of calling it.",
        epilog="passes, in pipeline order:\n"
               "  lower      the IR as traced from the source, specialised to ARGS\n"
               "  inline     calls to generative functions inlined under their addresses\n"
               "  addresses  traces and observations checked against what each model draws\n"
               "  expand     sim and density expanded into draws and log densities\n"
               "  simplify   forwarding and dead-code elimination (the final IR)")
    ir.add_argument("file", metavar="FILE", help="a .ppl source file")
    ir.add_argument("--entry", "-e", metavar="NAME",
                    help="the declaration to show (default: the file's only gen)")
    ir.add_argument("--args", "-a", metavar="ARGS", default="[]", dest="arguments",
                    help="its arguments, as a Python literal list: ints and bools are static "
                         "(sizes, flags), floats and nested lists of numbers are arrays; "
                         "e.g. \"[10]\" or \"[[0.5, 1.5], 3]\" (default: [])")
    ir.add_argument("--after", "-p", metavar="PASS", choices=IR_STAGES, default=None,
                    help=f"stop after this pass, one of: {', '.join(IR_STAGES)} "
                         "(default: the whole pipeline)")
    ir.set_defaults(run=run_ir)
    return parser


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


class UsageError(Exception):
    """The command line asks for something that does not exist (exit status 2)."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


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


# ---------------------------------------------------------------- ppl ir


def run_ir(options: argparse.Namespace) -> int:
    from .module import load

    values, keywords = parse_arguments(options.arguments)
    module = load(options.file)
    decl = _entry_declaration(module, options.entry, options.file)
    if decl.kind == "gen":
        program = getattr(module, decl.name)(*values, **keywords).ir(after=options.after)
    elif decl.kind == "fn":
        program = _fn_ir(module, decl.name, values, keywords, options.after)
    else:
        program = _objective_ir(module, decl.name, values, keywords, options.after)
    sys.stdout.write(format_program(program))
    return 0


def _entry_declaration(module, name: str | None, path: str):
    decls = module.declarations
    if name is None:
        gens = [d for d in decls.values() if d.kind == "gen"]
        if len(gens) == 1:
            return gens[0]
        listing = ", ".join(f"{d.kind} {d.name}" for d in decls.values()) or "nothing"
        raise UsageError(f"{path} declares {listing}", help="choose one with --entry NAME")
    if name not in decls:
        listing = ", ".join(f"{d.kind} {d.name}" for d in decls.values()) or "nothing"
        hint = did_you_mean(name, decls)
        raise UsageError(f"{path} has no declaration '{name}'", help=hint or f"it declares: {listing}")
    return decls[name]


def _fn_ir(module, name: str, values: list, keywords: dict, after: str | None) -> Program:
    """The IR of calling the ``fn`` ``name`` on the arguments (inlined into an entry)."""
    from .module import Inputs

    inputs = Inputs()
    args = [inputs.value(x, f"arg{i}") for i, x in enumerate(values)]
    kwargs = {k: inputs.value(v, k) for k, v in keywords.items()}

    def build(_inputs, builder):
        result = module.lowerer.inline_call(name, args, kwargs, None, builder)
        return [module.lowerer.as_atom(x, None) for x in _leaves(result)]

    return module.ir(None, build, inputs, after)


def _objective_ir(module, name: str, values: list, keywords: dict, after: str | None) -> Program:
    # ---- OBJECTIVES: `ppl ir` of an objective goes here (not supported yet). ----
    # Build the Objective (ppl.objective) from `values`/`keywords` and return
    # its IR after `after`; gen arguments need a spelling in --args (e.g.
    # "[coin(10), coin_guide(), 8]", resolved against `module`), and the
    # "adev" stage is added to IR_STAGES above.
    raise UsageError(f"'{name}' is an objective, and `ppl ir` does not show objectives yet",
                     help="choose a gen or fn declaration with --entry NAME")


def _leaves(tree) -> list:
    """The arrays of a returned value: tuples in order, records by sorted field name."""
    if isinstance(tree, tuple):
        return [x for item in tree for x in _leaves(item)]
    if isinstance(tree, dict):
        return [x for key in sorted(tree) for x in _leaves(tree[key])]
    return [tree]


def parse_arguments(text: str) -> tuple[list, dict]:
    """``--args``: a Python literal list of arguments (or a dict of keyword arguments).

    Ints and bools stay Python values (static: sizes and flags); floats and
    nested lists become numpy arrays (traced). A single value is one argument.

        >>> parse_arguments("[10, [0.5, 1.5]]")
        ([10, array([0.5, 1.5], dtype=float32)], {})
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UsageError(f"--args must be a Python literal list, got {text!r}",
                         help="for example --args \"[10]\" or --args \"[[0.5, 1.5], 3]\"") from None
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise UsageError("--args given as a dict needs argument names as its keys")
        return [], {k: _argument(v, k) for k, v in value.items()}
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return [_argument(v, f"argument {i + 1}") for i, v in enumerate(items)], {}


def _argument(value: Any, what: str) -> Any:
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return np.float32(value)
    if isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError:
            raise UsageError(f"--args: {what} is a ragged list; an array needs rows of "
                             "equal length") from None
        if array.dtype.kind == "f":
            return array.astype(np.float32)
        if array.dtype.kind in "iub":
            return array.astype(np.int32) if array.dtype.kind != "b" else array
        raise UsageError(f"--args: {what} must hold only numbers")
    raise UsageError(f"--args: {what} is {type(value).__name__} {value!r}; arguments are "
                     "ints, bools, floats or nested lists of numbers")


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
