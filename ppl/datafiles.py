"""Reading data files for ``ppl fit``: arrays by name from ``.npz``, ``.csv`` or ``.json``.

``read_data(path)`` returns a dict of NumPy arrays. A ``.csv`` file has a
header of names and one number per cell (a column per name); a ``.json``
file is an object of names to numbers or nested lists. A malformed file is a
:class:`DataError` whose caret points at the bad cell or position.

    >>> # read_data("examples/coin_flips.csv")["flips"].shape  ->  (50,)
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from .compiler.diagnostics import DataError, Diagnostic, Source

DATA_FORMATS = (".npz", ".csv", ".json")


def read_data(path: str) -> dict[str, np.ndarray]:
    """The arrays of a data file, by name: ``.csv`` columns, ``.json`` members, ``.npz`` arrays."""
    suffix = Path(path).suffix.lower()
    if suffix not in DATA_FORMATS:
        raise DataError(Diagnostic(f"cannot read data from {path}: the format is known by its "
                                   f"extension, one of {', '.join(DATA_FORMATS)}",
                                   help="save arrays with np.savez, or write a .csv with a header row"))
    if suffix == ".npz":
        return _read_npz(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise DataError(Diagnostic(f"cannot read the data {path}: {reason}")) from None
    source = Source(path, text)
    return _read_csv(source) if suffix == ".csv" else _read_json(source)


def _read_npz(path: str) -> dict[str, np.ndarray]:
    import zipfile

    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise DataError(Diagnostic(f"cannot read the data {path}: it is not an .npz archive",
                                   help="a .npz file is written by np.savez(path, name=array, ...)"))
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise DataError(Diagnostic(f"cannot read the data {path}: {reason}",
                                   help="a .npz file is written by np.savez(path, name=array, ...)")
                        ) from None
    for k, v in arrays.items():
        if v.dtype.kind not in "biuf":
            raise DataError(Diagnostic(f"array '{k}' of the data {path} has dtype {v.dtype}; "
                                       "data arrays hold numbers or bools"))
    return arrays


_INT = re.compile(r"[+-]?\d+\Z")


def _read_csv(source: Source) -> dict[str, np.ndarray]:
    lines = source.text.splitlines(keepends=True)
    offsets = np.cumsum([0] + [len(x) for x in lines]).tolist()
    rows = [(i, row) for i, row in enumerate(csv.reader(io.StringIO(source.text)))
            if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(Diagnostic(f"the data {source.name} is empty",
                                   help="a .csv needs a header row of names, then one row per "
                                        "data point"))

    def line_span(i: int):
        if i >= len(lines):
            return None
        return source.span(offsets[i], offsets[i] + len(lines[i].rstrip("\r\n")))

    def cell_span(i: int, j: int):
        if i >= len(lines) or '"' in lines[i]:
            return line_span(i)
        start = offsets[i]
        for k, cell in enumerate(lines[i].rstrip("\r\n").split(",")):
            if k == j:
                lead = len(cell) - len(cell.lstrip())
                return source.span(start + lead, start + len(cell.rstrip()))
            start += len(cell) + 1
        return line_span(i)

    header_line, header = rows[0]
    names = [h.strip() for h in header]
    for j, name in enumerate(names):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise DataError(Diagnostic(
                f"column {j + 1} of the header of {source.name} is {name!r}, not a name",
                cell_span(header_line, j),
                help="the first row names the columns, as the objective's arguments are named"))
    seen = set()
    for j, name in enumerate(names):
        if name in seen:
            raise DataError(Diagnostic(f"column '{name}' appears twice in {source.name}",
                                       cell_span(header_line, j)))
        seen.add(name)
    columns: list[list[str]] = [[] for _ in names]
    for i, row in rows[1:]:
        if len(row) != len(names):
            raise DataError(Diagnostic(
                f"line {i + 1} of {source.name} has {len(row)} cell{'s' if len(row) != 1 else ''}, "
                f"but the header names {len(names)} columns", line_span(i)))
        for j, cell in enumerate(row):
            cell = cell.strip()
            if not _INT.match(cell):
                try:
                    float(cell)
                except ValueError:
                    raise DataError(Diagnostic(
                        f"{cell!r} in column '{names[j]}' of {source.name} is not a number",
                        cell_span(i, j),
                        help="every cell of a data .csv is a number (0/1 for a flag)")) from None
            columns[j].append(cell)
    if len(rows) == 1:
        raise DataError(Diagnostic(f"the data {source.name} has a header but no rows",
                                   line_span(header_line)))
    out = {}
    for name, cells in zip(names, columns):
        if all(_INT.match(c) for c in cells):
            out[name] = np.array([int(c) for c in cells], np.int32)
        else:
            out[name] = np.array([float(c) for c in cells], np.float32)
    return out


def _read_json(source: Source) -> dict[str, np.ndarray]:
    try:
        value = json.loads(source.text)
    except json.JSONDecodeError as e:
        raise DataError(Diagnostic(f"the data {source.name} is not valid JSON: {e.msg}",
                                   source.span(e.pos, e.pos + 1))) from None
    if not isinstance(value, dict):
        raise DataError(Diagnostic(f"the data {source.name} must be a JSON object of "
                                   "name -> number or list of numbers",
                                   help='for example {"flips": [1, 0, 1], "K": 8}'))
    out = {}
    for name, v in value.items():
        where = _json_key_span(source, name)
        try:
            arr = np.asarray(v)
        except ValueError:
            arr = np.asarray(None, object)
        if arr.dtype.kind not in "biuf" or arr.dtype.kind == "O":
            raise DataError(Diagnostic(
                f"'{name}' in the data {source.name} is not a number or a (rectangular) nested "
                "list of numbers", where))
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.int32)
        elif arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        out[name] = arr
    return out


def _json_key_span(source: Source, name: str):
    at = source.text.find(json.dumps(name))
    return source.span(at, at + len(json.dumps(name))) if at >= 0 else None
