"""The shape of an indexing expression, by NumPy's rules (plain Python, no JAX).

An ``index`` equation carries a ``spec``: one item per index of the source,

- ``("c", k)``: a static int (already wrapped into ``0 <= k < n``);
- ``("s", start, stop)``: a slice with static bounds (no step);
- ``("d",)``: a traced int index, scalar or array (the next atom argument);
- ``("n",)``: ``None``, a new axis of size 1.

The backend turns the spec back into a NumPy index tuple, so the result is
whatever ``jax.numpy`` computes; :func:`index_shape` states that result's
shape at compile time. Basic indexing (ints, slices, new axes, traced
scalars) drops the int axes, keeps the sliced ones and inserts the new ones.
As soon as one index is an *array*, every int and traced index is an array
index ("advanced" indexing): they broadcast together, and the broadcast shape
replaces them where they stand if they are adjacent, or goes first if a slice
or a new axis separates them::

    >>> index_shape((5, 6, 7), [("d", (2, 3)), ("s", 0, 6), ("c", 1)])
    (2, 3, 6)
    >>> index_shape((5, 6, 7), [("s", 0, 5), ("d", (4,)), ("d", (4,))])
    (5, 4)
    >>> index_shape((5, 6), [("s", 0, 5), ("n",)])
    (5, 1, 6)
"""

from __future__ import annotations

from typing import Sequence


def broadcast_shapes(shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...] | None:
    """NumPy's broadcast of ``shapes``, or None when they do not broadcast."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(ndim):
        sizes = {s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def is_advanced(items: Sequence[tuple]) -> bool:
    """Whether an index is advanced: some traced index is an array."""
    return any(it[0] == "d" and it[1] for it in items)


def index_shape(shape: tuple[int, ...], items: Sequence[tuple]) -> tuple[int, ...]:
    """The shape of ``x[items]`` for ``x`` of ``shape``. ``("d", shape)`` items give the
    index array's shape; the caller has checked that the broadcast exists and that
    no more axes are indexed than ``x`` has."""
    consumed = sum(it[0] != "n" for it in items)
    rest = tuple(shape[consumed:])
    if not is_advanced(items):
        out = [1 if it[0] == "n" else _slice_size(it) for it in items if it[0] in ("s", "n")]
        return tuple(out) + rest
    arrays = [it for it in items if it[0] in ("c", "d")]
    positions = [i for i, it in enumerate(items) if it[0] in ("c", "d")]
    joint = broadcast_shapes([it[1] if it[0] == "d" else () for it in arrays])
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    before: list[int] = []
    after: list[int] = []
    for i, it in enumerate(items):
        if it[0] in ("s", "n"):
            size = _slice_size(it) if it[0] == "s" else 1
            (before if adjacent and i < positions[0] else after).append(size)
    return tuple(before) + joint + tuple(after) + rest


def _slice_size(item: tuple) -> int:
    """The length of a slice item, whose bounds the lowering has clipped to the axis."""
    return max(item[2] - item[1], 0)
