"""Python functions called from a program ("externs").

A function passed to ``ppl.load(..., externs={"mlp": mlp})`` is called from
the source like a builtin, with array arguments (a Flax or Equinox module's
apply, a hand-written JAX function). Its result shape is found with
``jax.eval_shape``, so it is never run at compile time.

    >>> import jax.numpy as jnp
    >>> f = extern_function("double", lambda x: 2 * x)
    >>> f.result_type({"args": (ArrayType("float32", (3,)),)})
    real[3]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ..compiler.library import ParamSpec
from ..compiler.types import ArrayType


@dataclass(frozen=True)
class ExternFunction:
    name: str
    fn: Callable[..., Any]
    params: tuple[ParamSpec, ...] = (ParamSpec("args", variadic=True),)
    doc: str = "a Python function passed in at load time"

    def result_type(self, bound: dict) -> ArrayType:
        specs = [jax.ShapeDtypeStruct(t.shape, t.dtype) if isinstance(t, ArrayType) else t
                 for t in bound["args"]]
        try:
            out = jax.eval_shape(self.fn, *specs)
        except Exception as e:  # the user's function failed on these shapes
            shapes = ", ".join(repr(t) for t in bound["args"])
            raise ValueError(f"the extern {self.name}() fails on arguments {shapes}: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        if not hasattr(out, "shape"):
            raise ValueError(f"the extern {self.name}() must return one array")
        dtype = "float32" if jnp.issubdtype(out.dtype, jnp.floating) else str(out.dtype)
        return ArrayType(dtype, tuple(out.shape))

    def impl(self, args: tuple) -> Any:
        return self.fn(*args)


def extern_function(name: str, fn: Callable[..., Any]) -> ExternFunction:
    if not callable(fn):
        raise TypeError(f"extern {name!r} must be callable")
    return ExternFunction(name, fn)
