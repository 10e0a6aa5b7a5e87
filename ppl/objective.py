"""Objectives: estimated reals to maximise, with unbiased gradient estimates.

An :class:`Objective` is an ``objective`` declaration applied to its
arguments (models, families, sizes, data). It is a pure function of
(parameters, key, data): ``value`` is ADEV's unbiased estimate of its
expectation (``enum`` sums exactly, as in the gradient), and
``value_and_grad`` also returns an unbiased estimate of the gradient with
respect to every parameter it reaches, computed by ADEV
(compiler/backend/adev.py) and compiled into one XLA program. ``value`` is
differentiable: ``jax.grad`` of it is ADEV's gradient estimate.

    >>> import ppl, jax
    >>> m = ppl.compile('''
    ... gen model() { z ~ normal(0.0, 1.0); x ~ normal(z, 1.0) }
    ... gen guide() { param mu: real = 0.0; z ~ normal(mu, 1.0) }''')
    >>> obj = ppl.stdlib.elbo(m.model() | {"x": 1.0}, m.guide())
    >>> params = obj.init(jax.random.PRNGKey(0))
    >>> value, grads = obj.value_and_grad(jax.random.PRNGKey(1), params)
    >>> sorted(grads)
    ['guide.mu']

The compiled program is built by the module's entry points (entries.py);
the data scale and minibatched inputs of a minibatch fit are arguments of
:meth:`Objective.compiled`, not state of the objective.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from .compiler.diagnostics import DataError, Diagnostic
from .compiler.ir import Program
from .compiler.types import ArrayType
from .entries import Entry, Inputs, Options, check_key, format_call


class Objective:
    """``objective`` ``name`` applied to ``args``; see the module docstring.

    ``module`` is the program it belongs to (anything with ``entries``,
    ``library`` and ``lowerer``, as a :class:`ppl.Module` has).
    """

    def __init__(self, module, name: str, args: tuple, kwargs: dict,
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

    def lower_inputs(self) -> tuple[Inputs, list, dict, tuple]:
        """Its arguments as entry inputs: (inputs, args, kwargs, signature)."""
        inputs = Inputs(self.module)
        args, kwargs, sig = inputs.call(tuple(self.args), dict(self.kwargs))
        return inputs, args, kwargs, sig

    def _emit(self, args, kwargs):
        name = self.name

        def emit(lowerer, b):
            value = lowerer.inline_call(name, args, kwargs, None, b)
            atom = lowerer.as_array(value, None, f"the value of objective {name}")
            if atom.type != ArrayType("float32", ()):
                raise DataError(Diagnostic(f"objective {name} must return a real scalar, "
                                           f"got {atom.type!r}"))
            return [atom], None

        return emit

    def options(self, data_scale: float | None = None, minibatched=()) -> Options:
        return Options.of(self.estimators, data_scale, minibatched)

    def compiled(self, data_scale: float | None = None, minibatched=()) -> tuple[Entry, Inputs]:
        """The compiled entry and this call's inputs. ``data_scale`` (N/B) and
        ``minibatched`` (indices of inputs holding a batch) serve minibatch fits."""
        inputs, args, kwargs, sig = self.lower_inputs()
        entry = self.module.entries.get("objective", self.name, sig, inputs,
                                        self._emit(args, kwargs),
                                        self.options(data_scale, minibatched))
        return entry, inputs

    def program(self, after: str | None = None, data_scale: float | None = None,
                minibatched=()) -> Program:
        """The objective's IR after a pass (``lower`` … ``simplify``, or ``adev``, the last)."""
        if after in (None, "adev"):
            return self.compiled(data_scale, minibatched)[0].program
        inputs, args, kwargs, _ = self.lower_inputs()
        return self.module.entries.program("objective", inputs, self._emit(args, kwargs),
                                           self.options(data_scale, minibatched), after=after)

    # ---------------------------------------------------------- use

    def init(self, key) -> dict[str, Any]:
        """Initial (unconstrained) values of every parameter the objective reaches."""
        from .combinators import initial_params  # an automatic family's init= strategy

        entry, _ = self.compiled()
        return initial_params(self, entry.init(check_key(key)), key)

    def value(self, key, params: dict | None = None):
        """ADEV's unbiased estimate of the objective. Differentiable: ``jax.grad`` of it
        with respect to ``params`` is ADEV's gradient estimate."""
        entry, inputs = self.compiled()
        return entry.value(entry.params(params), check_key(key), inputs.arrays)

    def value_and_grad(self, key, params: dict | None = None):
        """Unbiased estimates of the objective and its gradient (a dict like ``params``)."""
        entry, inputs = self.compiled()
        params = entry.params(params)
        return entry.value_and_grad({k: jnp.asarray(v, jnp.float32) for k, v in params.items()},
                                    check_key(key), inputs.arrays)

    def compiled_value_and_grad(self):
        """The jitted step ``f(params, key, data) -> (value, grads)`` for these arguments.

        ``data`` is the objective's traced inputs (arrays passed as arguments and
        observations, keywords in sorted order); passing new arrays of the same
        shapes reuses the compiled program. For benchmarks and ``ppl.fit``.
        """
        entry, inputs = self.compiled()
        arrays = inputs.arrays
        return lambda params, key, data=None: entry.value_and_grad(
            params, key, arrays if data is None else data)

    @property
    def parameter_paths(self) -> tuple[str, ...]:
        return tuple(self.compiled()[0].program.params)
