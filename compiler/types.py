"""Types of IR values.

Every IR variable has one of three types:

- :class:`ArrayType` — a dtype (``float32``, ``int32``, ``bool``) and a
  concrete shape; scalars have shape ``()``;
- :class:`TraceType` — a trace of a generative function: a static map from
  addresses to array types, plus the types of its return value (a tree of
  array types: a type, a tuple of trees, or a dict of trees);
- :class:`KeyType` — a PRNG key (only in generated code).

Tuples and records are not IR types: the lowering keeps them as Python
structures of IR atoms, so every pass sees arrays and traces only.

    >>> ArrayType("float32", (3, 2))
    real[3, 2]
    >>> REAL.shape
    ()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DTYPE_NAMES = {"float32": "real", "int32": "int", "bool": "bool"}


@dataclass(frozen=True)
class ArrayType:
    dtype: str
    shape: tuple[int, ...] = ()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def with_shape(self, shape: tuple[int, ...]) -> "ArrayType":
        return ArrayType(self.dtype, tuple(shape))

    def __repr__(self) -> str:
        name = DTYPE_NAMES.get(self.dtype, self.dtype)
        return f"{name}[{', '.join(map(str, self.shape))}]" if self.shape else name


REAL = ArrayType("float32")
INT = ArrayType("int32")
BOOL = ArrayType("bool")


@dataclass(frozen=True)
class TraceType:
    """The type of a trace: addresses (sorted) with their value types."""

    fields: tuple[tuple[str, ArrayType], ...]
    retval: Any = None  # a tree of ArrayType (type, tuple, or dict), or None

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self.fields)

    def field(self, address: str) -> ArrayType | None:
        for a, t in self.fields:
            if a == address:
                return t
        return None

    def __repr__(self) -> str:
        inner = ", ".join(f"{a}: {t!r}" for a, t in self.fields)
        return f"trace{{{inner}}}"


@dataclass(frozen=True)
class KeyType:
    def __repr__(self) -> str:
        return "key"


KEY = KeyType()

Type = ArrayType | TraceType | KeyType


def tree_leaves(tree: Any) -> list:
    """Leaves of a tree of tuples and dicts (dict keys sorted)."""
    if isinstance(tree, tuple):
        return [leaf for item in tree for leaf in tree_leaves(item)]
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in tree_leaves(tree[k])]
    return [tree]


def tree_map(fn, tree: Any) -> Any:
    if isinstance(tree, tuple):
        return tuple(tree_map(fn, t) for t in tree)
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    return fn(tree)


def tree_unflatten(tree: Any, leaves: list) -> Any:
    """Rebuild ``tree``'s structure from ``leaves`` (in ``tree_leaves`` order)."""
    it = iter(leaves)

    def build(t):
        if isinstance(t, tuple):
            return tuple(build(x) for x in t)
        if isinstance(t, dict):
            return {k: build(t[k]) for k in sorted(t)}
        return next(it)

    return build(tree)
