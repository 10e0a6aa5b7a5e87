"""Python functions called from a program ("externs").

A function passed to ``ppl.load(..., externs={"mlp": mlp})`` is called from
the source like a builtin, with array arguments (a Flax or Equinox module's
apply, a hand-written JAX function). Its result shape is found with
``jax.eval_shape``, so it is never run at compile time.

    >>> import jax.numpy as jnp
    >>> f = extern_function("double", lambda x: 2 * x)
    >>> f.result_type({"args": (ArrayType("float32", (3,)),)})
    real[3]

A :class:`LearnableModule` (what ``ppl.flax_module`` and ``ppl.eqx_module``
make of a network) becomes a *learnable* extern: its parameters are the
program's, named under the extern (``enc.Dense_0.kernel``), drawn by the
module's own init and learned by ``fit``; a call passes them to its apply.

    >>> m = LearnableModule(lambda key: {"w": jnp.ones(3)}, lambda p, x: p["w"] * x,
    ...                     {"w": jax.ShapeDtypeStruct((3,), jnp.float32)})
    >>> f = extern_function("scale", m)
    >>> f.parameters
    (LearnedParameter(name='w', type=real[3], initializer='scale.w'),)
    >>> f.result_type({"args": (ArrayType("float32", (3,)), ArrayType("float32", (3,)))})
    real[3]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ..compiler.library import LearnedParameter, ParamSpec
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
        return _result_array(self.name, out)

    def impl(self, args: tuple) -> Any:
        return self.fn(*args)


@dataclass(frozen=True, eq=False)
class LearnableModule:
    """A network to learn inside a program: ``init(key)`` gives its parameters (a pytree
    of real arrays), ``apply(params, *args)`` its one array output; ``abstract`` is the
    parameters' pytree of ``jax.ShapeDtypeStruct`` (``jax.eval_shape(init, key)``)."""

    init: Callable[[Any], Any]
    apply: Callable[..., Any]
    abstract: Any
    kind: str = "module"


@dataclass(frozen=True, eq=False)
class LearnableExtern:
    """A :class:`LearnableModule` as a library function with ``parameters``: the
    program passes its parameters' leaves (in pytree order) after the call's arguments."""

    name: str
    module: LearnableModule
    params: tuple[ParamSpec, ...] = (ParamSpec("args", variadic=True),)
    doc: str = "a module passed in at load time, with learnable parameters"

    @property
    def parameters(self) -> tuple[LearnedParameter, ...]:
        paths, _ = jax.tree_util.tree_flatten_with_path(self.module.abstract)
        out = []
        for path, leaf in paths:
            name = leaf_name(path)
            out.append(LearnedParameter(name, ArrayType("float32", tuple(leaf.shape)),
                                        f"{self.name}.{name}"))
        return tuple(out)

    def call(self, args: tuple) -> Any:
        """apply(params, *inputs) for ``args`` = the inputs, then the parameters' leaves."""
        treedef = jax.tree_util.tree_structure(self.module.abstract)
        n = treedef.num_leaves
        inputs, leaves = args[:len(args) - n], args[len(args) - n:]
        return self.module.apply(jax.tree_util.tree_unflatten(treedef, list(leaves)), *inputs)

    def result_type(self, bound: dict) -> ArrayType:
        n = len(self.parameters)
        shown = ", ".join(repr(t) for t in bound["args"][:len(bound["args"]) - n])
        specs = [jax.ShapeDtypeStruct(t.shape, t.dtype) if isinstance(t, ArrayType) else t
                 for t in bound["args"]]
        try:
            out = jax.eval_shape(lambda *a: self.call(a), *specs)
        except Exception as e:  # the module failed on these shapes
            raise ValueError(f"the {self.module.kind} {self.name}() fails on arguments ({shown}): "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        return _result_array(self.name, out)

    def impl(self, args: tuple) -> Any:
        return self.call(args)

    def initializers(self) -> dict[str, "ModuleInitializer"]:
        """One initialiser per parameter, under the names its ``parameters`` give."""
        return {p.initializer: ModuleInitializer(p.initializer, self.module, i)
                for i, p in enumerate(self.parameters)}


@dataclass(frozen=True, eq=False)
class ModuleInitializer:
    """Leaf ``index`` of the module's own ``init(key)`` (an initialiser, library.py)."""

    name: str
    module: LearnableModule
    index: int
    params: tuple[ParamSpec, ...] = ()
    doc: str = "a learnable extern's parameter, from its module's init"

    def impl(self, key: Any, shape: tuple[int, ...], dtype: str, **bound: Any) -> Any:
        leaf = jax.tree_util.tree_leaves(self.module.init(key))[self.index]
        return jnp.asarray(leaf, jnp.float32).reshape(shape)


def leaf_name(path: tuple) -> str:
    """``Dense_0.kernel`` for a pytree path (dict keys, attributes, sequence indices)."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:  # pragma: no cover - jax's key kinds all have one of them
            parts.append(str(k))
    return ".".join(parts)


def _result_array(name: str, out: Any) -> ArrayType:
    if not hasattr(out, "shape"):
        raise ValueError(f"the extern {name}() must return one array")
    dtype = "float32" if jnp.issubdtype(out.dtype, jnp.floating) else str(out.dtype)
    return ArrayType(dtype, tuple(out.shape))


def extern_function(name: str, fn: Callable[..., Any] | LearnableModule
                    ) -> ExternFunction | LearnableExtern:
    if isinstance(fn, LearnableModule):
        return LearnableExtern(name, fn)
    if not callable(fn):
        raise TypeError(f"extern {name!r} must be callable")
    return ExternFunction(name, fn)
