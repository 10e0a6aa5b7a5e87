"""Objectives: estimated reals to maximise, with unbiased gradient estimates.

An :class:`Objective` is an ``objective`` declaration applied to its
arguments (models, families, sizes, data). It is a pure function of
(parameters, key, data): ``value`` is an unbiased estimate of its
expectation, and ``value_and_grad`` also returns an unbiased estimate of the
gradient with respect to every parameter it reaches, computed by ADEV
(compiler/backend/adev.py) and compiled into one XLA program.

    >>> import ppl, jax
    >>> m = ppl.compile('''
    ... gen model() { z ~ normal(0.0, 1.0); x ~ normal(z, 1.0) }
    ... gen guide() { param mu: real = 0.0; z ~ normal(mu, 1.0) }''')
    >>> obj = ppl.stdlib.elbo(m.model() | {"x": 1.0}, m.guide())
    >>> params = obj.init(jax.random.PRNGKey(0))
    >>> value, grads = obj.value_and_grad(jax.random.PRNGKey(1), params)
    >>> sorted(grads)
    ['guide.mu']
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .compiler import passes
from .compiler.backend.adev import objective_function
from .compiler.backend.standard import evaluate, init_params
from .compiler.diagnostics import DataError, Diagnostic
from .compiler.ir import Program, walk
from .compiler.passes.estimators import assign_estimators
from .compiler.types import ArrayType
from .module import Inputs, Module, _program, check_params, format_call


class Objective:
    """``objective`` ``name`` applied to ``args``; see the module docstring."""

    def __init__(self, module: Module, name: str, args: tuple, kwargs: dict,
                 estimators: dict[str, str] | None = None):
        self.module = module
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.estimators = dict(estimators or {})

    def __repr__(self) -> str:
        return format_call(self.name, self.args, self.kwargs)

    def with_estimators(self, overrides: dict[str, str]) -> "Objective":
        """The same objective with estimators chosen by address pattern (``fnmatch``)."""
        both = dict(self.estimators)
        both.update(overrides)
        return Objective(self.module, self.name, self.args, self.kwargs, both)

    # ---------------------------------------------------------- compilation

    def _inputs(self) -> tuple[Inputs, list, dict]:
        inputs = Inputs()
        args = [inputs.value(x, f"arg{i}") for i, x in enumerate(self.args)]
        kwargs = {k: inputs.value(v, k) for k, v in self.kwargs.items()}
        return inputs, args, kwargs

    def _build(self, inputs, args, kwargs, b):
        lowerer = self.module.lowerer
        lowerer.current_decl = _objective_entry_decl()
        value = lowerer.inline_call(self.name, args, kwargs, None, b)
        atom = lowerer.as_array(value, None, f"the value of objective {self.name}")
        if atom.type != ArrayType("float32", ()):
            raise DataError(Diagnostic(f"objective {self.name} must return a real scalar, "
                                       f"got {atom.type!r}"))
        return [atom]

    def program(self, after: str | None = None) -> Program:
        """The objective's IR after a pass (``lower`` … ``simplify``, or ``adev``)."""
        inputs, args, kwargs = self._inputs()
        from .compiler.lower import Builder

        b = Builder("function")
        b.params = list(inputs.vars)
        b.defined.update(v for v in inputs.vars)
        outs = self._build(inputs, args, kwargs, b)
        program = _program(self.module, "entry", b, outs)
        scale = getattr(self, "data_scale", None)
        if scale is not None:
            program.data_scale = {inputs.vars[i]: scale
                                  for i in getattr(self, "minibatched_inputs", ())}
        program = passes.run(program, after=None if after == "adev" else after)
        if after in (None, "adev"):
            program = assign_estimators(program, self.module.library, self.estimators)
        used = {e.attrs["path"] for e in walk(program.functions[program.entry].body)
                if e.op == "param"}
        program.params = {p: i for p, i in self.module.lowerer.params.items() if p in used}
        return program

    def _compiled(self):
        inputs, args, kwargs = self._inputs()
        key = ("objective", self.name, inputs.signature(), tuple(sorted(self.estimators.items())),
               getattr(self, "data_scale", None), tuple(sorted(getattr(self, "minibatched_inputs", ()))))
        cache = self.module._entries
        if key not in cache:
            program = self.program()
            library = self.module.library
            f = objective_function(program, library)
            cache[key] = (program,
                          jax.jit(lambda p, k, x: evaluate(program, library, p, k, x)[0]),
                          jax.jit(jax.value_and_grad(f)))
        return cache[key], inputs

    # ---------------------------------------------------------- use

    def init(self, key) -> dict[str, Any]:
        """Initial (unconstrained) values of every parameter the objective reaches."""
        (program, _, _), _ = self._compiled()
        return init_params(program, self.module.library, key)

    def value(self, key, params: dict | None = None):
        """An unbiased estimate of the objective."""
        (program, value_fn, _), inputs = self._compiled()
        return value_fn(check_params(program, params, self.module.library), key, inputs.arrays)

    def value_and_grad(self, key, params: dict | None = None):
        """Unbiased estimates of the objective and its gradient (a dict like ``params``)."""
        (program, _, grad_fn), inputs = self._compiled()
        params = check_params(program, params, self.module.library)
        return grad_fn({k: jnp.asarray(v, jnp.float32) for k, v in params.items()}, key,
                       inputs.arrays)

    def compiled_value_and_grad(self):
        """The jitted step ``f(params, key, data) -> (value, grads)`` for these arguments.

        ``data`` is the objective's traced inputs (arrays passed as arguments and
        observations), in the order they were given; passing new arrays of the
        same shapes reuses the compiled program. For benchmarks and ``ppl.fit``.
        """
        (program, _, grad_fn), inputs = self._compiled()
        arrays = inputs.arrays
        return lambda params, key, data=None: grad_fn(params, key, arrays if data is None else data)

    @property
    def parameter_paths(self) -> tuple[str, ...]:
        (program, _, _), _ = self._compiled()
        return tuple(program.params)


def _objective_entry_decl():
    from .compiler import ast

    return ast.Decl("objective", "<entry>", (), ast.Block((), None), None, None)
