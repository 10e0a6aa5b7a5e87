"""Command-line arguments: Python literals, generative functions written as calls, and
matching a data file and ``--arg`` values to an objective's declared arguments.

``ppl fit``, ``ppl sample`` and ``ppl ir`` (``ppl/cli.py``) take arguments as
Python literals: ints and bools are static, floats and nested lists of numbers
are arrays, and a *string* is a generative function written as a call,
``'coin(10)'`` or ``"coin(3) | {'flips': [1, 0, 1]}"``, bound in the program.

    >>> parse_arguments("[10, [0.5, 1.5]]")
    ([10, array([0.5, 1.5], dtype=float32)], {})
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .compiler.diagnostics import DataError, Diagnostic, did_you_mean


class UsageError(Exception):
    """The command line asks for something that does not exist (exit status 2)."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


def match_arguments(module, decl, data: dict, extra: dict, data_path: str | None
                    ) -> tuple[dict, dict]:
    """The objective's arguments by name: ``(static values, data arrays)``.

    ``data`` comes from the data file, ``extra`` from ``--arg``; every
    argument must be given exactly once, and every name given must be an
    argument. Arrays are converted to the declared dtype where that is exact.
    """
    names = [a.name for a in decl.args]
    holds = _data_listing(data, data_path)
    takes = f"{decl.name} takes {signature(decl)}; {holds}"
    span = _signature_span(decl)
    problems = []
    for k in extra:
        if k not in names:
            problems.append(Diagnostic(
                f"objective {decl.name} has no argument '{k}' (given with --arg)", span,
                help=_hint(k, names, takes)))
    for k in data:
        if k not in names:
            problems.append(Diagnostic(
                f"objective {decl.name} has no argument '{k}' (a name in the data {data_path})",
                span, help=_hint(k, names, takes)))
        elif k in extra:
            problems.append(Diagnostic(f"argument '{k}' is given both by the data and by --arg",
                                       span, help="give it once"))
    missing = [n for n in names if n not in data and n not in extra]
    if missing:
        listing = ", ".join(f"'{n}'" for n in missing)
        problems.append(Diagnostic(
            f"objective {decl.name} needs argument{'s' if len(missing) > 1 else ''} {listing}, "
            f"which {'neither the data nor --arg gives' if data_path else 'no --data or --arg gives'}",
            span, help=f"{takes}; add {'them' if len(missing) > 1 else 'it'} to the data, or "
                       f"give --arg {missing[0]}=VALUE"))
    if problems:
        raise DataError(problems)

    statics, arrays = {}, {}
    for arg in decl.args:
        if arg.name in extra:
            statics[arg.name] = extra[arg.name]
            continue
        value = _coerce(data[arg.name], arg, data_path)
        (arrays if isinstance(value, np.ndarray) else statics)[arg.name] = value
    statics = {k: resolve(v, module) for k, v in statics.items()}
    return statics, arrays


def _signature_span(decl):
    """The span of ``objective name(args)``: the declaration's first line up to its ``)``."""
    if decl.span is None:
        return None
    text = decl.span.source.text
    after = decl.args[-1].span.end if decl.args and decl.args[-1].span else decl.name_span.end
    close = text.find(")", after)
    end = close + 1 if close != -1 and "\n" not in text[decl.span.start:close] else decl.span.end
    return decl.span.source.span(decl.span.start, end)


def _hint(name: str, names: list[str], takes: str) -> str:
    close = did_you_mean(name, names)
    return f"{close + ' ' if close else ''}{takes}"


def signature(decl) -> str:
    return f"({', '.join(_arg_text(a) for a in decl.args)})"


def _arg_text(arg) -> str:
    if arg.type is None:
        return arg.name
    span = arg.type.span
    text = span.source.text[span.start:span.end] if span is not None else arg.type.name
    return f"{arg.name}: {text}"


def _data_listing(data: dict, path: str | None) -> str:
    if path is None:
        return "no data file was given"
    if not data:
        return f"the data {path} holds nothing"
    return f"the data {path} holds " + ", ".join(describe_value(k, v) for k, v in data.items())


def describe_value(name: str, value: Any) -> str:
    if isinstance(value, np.ndarray):
        kind = {"f": "real", "i": "int", "u": "int", "b": "bool"}.get(value.dtype.kind, str(value.dtype))
        return f"{name}: {kind}{list(value.shape) if value.shape else ''}"
    return f"{name}={value!r}"


def _coerce(value: np.ndarray, arg, data_path: str | None) -> Any:
    """A data array as the argument's declared type: static int/bool, or a real/int/bool array."""
    t = arg.type
    if t is None:
        return value
    if t.name in ("int", "bool") and not t.dims:  # a static scalar
        if value.ndim == 0 and value.dtype.kind in "iub" or (
                value.ndim == 0 and value.dtype.kind == "f" and float(value).is_integer()):
            return bool(value) if t.name == "bool" else int(value)
        raise DataError(Diagnostic(
            f"argument '{arg.name}' is a static {t.name}, but the data {data_path} gives an "
            f"array {describe_value(arg.name, value).split(': ', 1)[-1]}", t.span,
            help=f"give it with --arg {arg.name}=VALUE"))
    if t.name == "gen":
        raise DataError(Diagnostic(f"argument '{arg.name}' is a generative function, which a "
                                   "data file cannot give", t.span,
                                   help=f"give it with --arg \"{arg.name}='name(args)'\""))
    if t.name == "real" and value.dtype.kind in "iub":
        return value.astype(np.float32)
    if t.name == "int" and value.dtype.kind == "f" and np.all(np.isfinite(value)) \
            and np.all(value == np.round(value)):
        return value.astype(np.int32)
    if t.name == "int" and value.dtype.kind == "b":
        return value.astype(np.int32)
    if t.name == "bool" and value.dtype.kind in "iuf" and np.all((value == 0) | (value == 1)):
        return value.astype(bool)
    return value


@dataclass(frozen=True)
class GenSpec:
    """A generative function named in ``--args``: ``name(args) | {observations}``."""

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    observations: dict = field(default_factory=dict)
    text: str = ""

    def __repr__(self) -> str:
        return f"GenSpec({self.text!r})"


def parse_arguments(text: str) -> tuple[list, dict]:
    """``--args``: a Python literal list of arguments (or a dict of keyword arguments).

    Ints and bools stay Python values (static: sizes and flags); floats and
    nested lists become numpy arrays (traced); strings name generative
    functions (``'coin(10)'``, resolved against the program later). A single
    value is one argument.

        >>> parse_arguments("[10, [0.5, 1.5]]")
        ([10, array([0.5, 1.5], dtype=float32)], {})
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UsageError(f"--args must be a Python literal list, got {text!r}",
                         help="for example --args \"[10]\", --args \"[[0.5, 1.5], 3]\" or "
                              "--args \"['coin(10)', 'coin_guide()']\"") from None
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise UsageError("--args given as a dict needs argument names as its keys")
        return [], {k: _argument(v, k) for k, v in value.items()}
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return [_argument(v, f"argument {i + 1}") for i, v in enumerate(items)], {}


def parse_assignment(text: str) -> tuple[str, Any]:
    """``--arg NAME=VALUE``: VALUE is a Python literal, or a gen written as a call."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise UsageError(f"--arg takes NAME=VALUE, got {text!r}",
                         help="for example --arg K=8 or --arg \"q='coin_guide()'\"")
    try:
        value = ast.literal_eval(rest.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = rest.strip()  # not a literal: maybe a gen written without quotes, coin_guide()
        if not value:
            raise UsageError(f"--arg {name}= has no value") from None
    return name, _argument(value, f"--arg {name}", option="--arg")


def _argument(value: Any, what: str, option: str = "--args") -> Any:
    prefix = what if what.startswith("--") else f"{option}: {what}"
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return np.float32(value)
    if isinstance(value, str):
        return _gen_spec(value, prefix)
    if isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError:
            raise UsageError(f"{prefix} is a ragged list; an array needs rows of "
                             "equal length") from None
        if array.dtype.kind == "f":
            return array.astype(np.float32)
        if array.dtype.kind in "iub":
            return array.astype(np.int32) if array.dtype.kind != "b" else array
        raise UsageError(f"{prefix} must hold only numbers")
    raise UsageError(f"{prefix} is {type(value).__name__} {value!r}; arguments are "
                     "ints, bools, floats, nested lists of numbers, or strings naming a gen")


def _gen_spec(text: str, prefix: str) -> GenSpec:
    """Parse ``'name(args)'`` or ``"name(args) | {'address': value}"``."""
    usage = UsageError(
        f"{prefix} is the string {text!r}; a string names a generative function as a call",
        help="for example 'coin(10)', 'coin_guide()' or \"coin(3) | {'flips': [1, 0, 1]}\"")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise usage from None
    observations: dict = {}
    if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.BitOr):
        try:
            obs = ast.literal_eval(tree.right)
        except ValueError:
            raise usage from None
        if not isinstance(obs, dict) or not all(isinstance(k, str) for k in obs):
            raise usage
        observations = {k: _argument(v, f"observation '{k}' of {text!r}") for k, v in obs.items()}
        tree = tree.left
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise usage
    try:
        args = tuple(_argument(ast.literal_eval(a), f"argument {i + 1} of {text!r}")
                     for i, a in enumerate(tree.args))
        kwargs = {k.arg: _argument(ast.literal_eval(k.value), f"argument {k.arg} of {text!r}")
                  for k in tree.keywords if k.arg is not None}
    except ValueError:
        raise usage from None
    if any(k.arg is None for k in tree.keywords):
        raise usage
    return GenSpec(tree.func.id, args, kwargs, observations, text.strip())


def resolve(value: Any, module) -> Any:
    """Turn the :class:`GenSpec` s in parsed arguments into the program's generative functions."""
    if isinstance(value, list):
        return [resolve(v, module) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, module) for k, v in value.items()}
    if not isinstance(value, GenSpec):
        return value
    decls = module.lowerer.decls
    gens = [n for n, d in decls.items() if d.kind == "gen"]
    if value.name not in decls or decls[value.name].kind != "gen":
        hint = did_you_mean(value.name, gens)
        raise UsageError(f"{value.text!r} names no generative function of the program",
                         help=hint or f"its gens: {', '.join(gens) or 'none'}")
    gen = getattr(module, value.name)(*resolve(list(value.args), module),
                                      **resolve(dict(value.kwargs), module))
    return gen | value.observations if value.observations else gen
