"""Flax and Equinox networks as learnable externs.

``ppl.flax_module(module, *example_args)`` and ``ppl.eqx_module(module)``
describe a network so that a program can call it and learn it: pass the
result as an extern, call it in the program like a function, and its
parameters become the program's, named under the extern's name, initialised
by the module's own init and learned by ``fit`` with every other parameter::

    enc = ppl.flax_module(Encoder(), jnp.zeros(3))       # a flax.linen.Module
    m = ppl.compile(source, externs={"enc": enc})        # in the source: out = enc(x)
    m.guide(x).init(key)   # {'enc.Dense_0.kernel': ..., 'enc.Dense_0.bias': ..., ...}

One extern is one set of weights: every call of ``enc`` in the program (in
a family and in a model, in a plate, in a loop) reads the same parameters;
pass two modules under two names for two networks. The module must return
one array and be stateless (Flax variables other than ``params``, such as
``batch_stats``, are not supported). Both libraries are optional
(``pip install "ppl[nn]"``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .errors import DataError
from .compiler.diagnostics import Diagnostic
from .stdlib.externs import LearnableModule, leaf_name


def flax_module(module: Any, *example_args: Any) -> LearnableModule:
    """A ``flax.linen`` module as a learnable extern; ``example_args`` are inputs of the
    shapes it will be called with (for its init, which finds its parameters' shapes)."""
    linen = _require("flax.linen", "flax")
    if not isinstance(module, linen.Module):
        raise DataError(Diagnostic(f"ppl.flax_module needs a flax.linen.Module, got "
                                   f"{type(module).__name__}",
                                   help="for an Equinox module use ppl.eqx_module(module)"))

    def variables(key):
        return module.init(key, *example_args)

    shapes = _abstract(variables, f"the Flax module {type(module).__name__}")
    others = sorted(set(shapes) - {"params"})
    if others:
        raise DataError(Diagnostic(
            f"the Flax module {type(module).__name__} has variables besides its params "
            f"({', '.join(others)}); only stateless modules can be learned in a program",
            help="remove the mutable state (e.g. BatchNorm's batch_stats) or use a module "
                 "without it"))
    params = shapes.get("params", {})
    _check_real(params, type(module).__name__)
    return LearnableModule(lambda key: variables(key)["params"],
                           lambda p, *args: module.apply({"params": p}, *args), params,
                           "Flax module")


def eqx_module(module: Any) -> LearnableModule:
    """An Equinox module as a learnable extern: its real arrays are the parameters, and
    their initial values are the module's own (the key that built it drew them)."""
    eqx = _require("equinox", "equinox")
    if not isinstance(module, eqx.Module):
        raise DataError(Diagnostic(f"ppl.eqx_module needs an equinox.Module, got "
                                   f"{type(module).__name__}",
                                   help="for a Flax module use ppl.flax_module(module, example)"))
    params, static = eqx.partition(module, eqx.is_inexact_array)
    abstract = jax.eval_shape(lambda: params)
    _check_real(abstract, type(module).__name__)
    return LearnableModule(lambda key: params, lambda p, *args: eqx.combine(p, static)(*args),
                           abstract, "Equinox module")


def _abstract(init, what: str):
    try:
        return jax.eval_shape(init, jax.random.PRNGKey(0))
    except Exception as e:  # the user's module failed on the example
        raise DataError(Diagnostic(f"{what}: its init fails on the example input: "
                                   f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
                                   help="give example arguments of the shapes the program "
                                        "calls it with")) from None


def _check_real(params, name: str) -> None:
    paths, _ = jax.tree_util.tree_flatten_with_path(params)
    if not paths:
        raise DataError(Diagnostic(f"the module {name} has no parameters to learn",
                                   help="pass a plain function as an extern instead"))
    for path, leaf in paths:
        if leaf.dtype != jnp.float32:
            raise DataError(Diagnostic(
                f"parameter {leaf_name(path)} of the module {name} has dtype {leaf.dtype}; "
                "a program's parameters are float32",
                help="build the module with float32 parameters (param_dtype=jnp.float32)"))


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(Diagnostic(f"{package} is not installed",
                                   help='install the optional networks extra: '
                                        'pip install "ppl[nn]"')) from None


__all__ = ["flax_module", "eqx_module"]
