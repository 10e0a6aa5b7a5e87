"""Abstract evaluation: the types of library calls, found by tracing them with JAX.

The compiler describes an argument as an :class:`ArrayType` (dtype name and
concrete shape) or, for a literal, as a plain Python scalar. To learn the type
of a call, the library runs the JAX implementation under ``jax.eval_shape``:
each ArrayType becomes a ``jax.ShapeDtypeStruct`` and is traced, while Python
values (literals, static sizes and axes) are closed over unchanged, so that
JAX sees them as weakly typed constants exactly as the backend will. Nothing
is computed on device.

Invariants:

- the types returned use the three IR dtype names, ``float32``, ``int32`` and
  ``bool``: any floating result maps to ``float32`` and any integer to
  ``int32``, whatever JAX's x64 setting;
- shapes are described to users as ``[3, 4]``, and a scalar as ``[]``.

    >>> import jax.numpy as jnp
    >>> abstract_type(lambda x, y: jnp.add(x, y), [ArrayType("float32", (3,)), 2])
    real[3]
    >>> describe_shapes(["loc", "scale"], [ArrayType("float32", (3,)), 1.0])
    'loc has shape [3] and scale has shape []'
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..compiler.types import ArrayType

# IR dtype name -> the JAX dtype a traced argument of that type gets.
JAX_DTYPES = {"float32": jnp.float32, "int32": jnp.int32, "bool": jnp.bool_}


def dtype_name(dtype: Any) -> str:
    """The IR dtype name (``float32``, ``int32`` or ``bool``) of a JAX dtype."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "bool"
    if np.issubdtype(dtype, np.integer):
        return "int32"
    if np.issubdtype(dtype, np.floating):
        return "float32"
    raise ValueError(f"the library produced a value of dtype {dtype}, which the language has no type for")


def as_real(value: Any) -> Any:
    """``value`` as a floating array: integers and booleans are promoted to the default float."""
    value = jnp.asarray(value)
    return value if jnp.issubdtype(value.dtype, jnp.floating) else value.astype(jnp.result_type(float))


def shape_of(arg: Any) -> tuple[int, ...]:
    """The shape of an argument: an ArrayType's, or ``()`` for a Python scalar."""
    return tuple(arg.shape) if isinstance(arg, ArrayType) else tuple(np.shape(arg))


def format_shape(shape: Sequence[int]) -> str:
    """``[3, 4]`` for shape ``(3, 4)``; ``[]`` for a scalar."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def describe_shapes(names: Sequence[str], args: Sequence[Any]) -> str:
    """``"a has shape [3] and b has shape [4]"`` for arguments named ``names``."""
    parts = [f"{name} has shape {format_shape(shape_of(arg))}" for name, arg in zip(names, args)]
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def first_line(error: Exception) -> str:
    """The first line of an exception's message, without a trailing full stop."""
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__).rstrip(".")


def to_abstract(arg: ArrayType) -> jax.ShapeDtypeStruct:
    """The JAX shape struct that stands for an argument of type ``arg``."""
    return jax.ShapeDtypeStruct(tuple(arg.shape), JAX_DTYPES[arg.dtype])


def abstract_type(fn: Callable[..., Any], args: Sequence[Any]) -> ArrayType:
    """The ArrayType of ``fn(*args)``, where ArrayTypes stand for traced arrays.

    ``args`` may nest ArrayTypes inside tuples (a variadic argument). Any
    exception from tracing propagates; callers rephrase it for users.
    """
    traced: list[ArrayType] = []

    def mark(arg: Any) -> Any:
        # Replace each ArrayType by a placeholder index into ``traced``.
        if isinstance(arg, ArrayType):
            traced.append(arg)
            return _Slot(len(traced) - 1)
        if isinstance(arg, tuple):
            return tuple(mark(a) for a in arg)
        return arg

    template = [mark(a) for a in args]

    def fill(arg: Any, values: Sequence[Any]) -> Any:
        if isinstance(arg, _Slot):
            return values[arg.index]
        if isinstance(arg, tuple):
            return tuple(fill(a, values) for a in arg)
        return arg

    def run(*values: Any) -> Any:
        return fn(*[fill(a, values) for a in template])

    out = jax.eval_shape(run, *[to_abstract(t) for t in traced])
    if not hasattr(out, "shape") or not hasattr(out, "dtype"):
        raise ValueError("the library function returned a structure, not one array")
    return ArrayType(dtype_name(out.dtype), tuple(int(d) for d in out.shape))


class _Slot:
    """Where the ``index``-th traced argument goes in an argument list."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index
