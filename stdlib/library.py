"""The standard library as one object implementing the compiler's ``Library`` protocol.

``ppl`` hands :data:`STANDARD` to the compiler; the compiler never imports
this package. The registries are the tables of the sibling modules:
:data:`~.functions.FUNCTIONS`, :data:`~.distributions.DISTRIBUTIONS`,
:data:`~.initializers.INITIALIZERS` and :data:`~.constraints.CONSTRAINTS`.
``estimators`` (gradient estimator rules) and ``sources`` (objectives written
in the language) start empty and are filled by their own modules.

    >>> STANDARD.distributions["normal"].forms
    (('loc', 'scale'),)
    >>> "glorot" in STANDARD.initializers and "simplex" in STANDARD.constraints
    True

The estimator registry (``estimators.ESTIMATORS``) is the one place estimator
names are written; the compiler reads them, and the rules that work inside
``for`` loops, from here:

    >>> tuple(STANDARD.estimators), sorted(STANDARD.estimator_tail)
    (('reparam', 'reinforce', 'enum', 'mvd'), ['reinforce', 'reparam'])
"""

from __future__ import annotations

from typing import Any

from importlib import resources

from .constraints import (CONSTRAINTS, ConstraintKind, constraint_for, constraint_for_bounds,
                          to_constrained, to_unconstrained, unconstrained_shape)
from .distributions import DISTRIBUTIONS, NumpyroDistribution
from .estimators import ESTIMATORS, TAIL
from .functions import FUNCTIONS, JaxFunction
from .initializers import INITIALIZERS, JaxInitializer
from .flows import flow_functions, flow_initializers
from .supports import support_functions


class StandardLibrary:
    """Functions, distributions, initialisers, constraints, estimators and objective sources."""

    def __init__(self) -> None:
        self.functions: dict[str, JaxFunction] = {**FUNCTIONS, **support_functions(),
                                                   **flow_functions()}
        self.distributions: dict[str, NumpyroDistribution] = dict(DISTRIBUTIONS)
        self.initializers: dict[str, JaxInitializer] = {**INITIALIZERS, **flow_initializers()}
        self.constraints: dict[str, ConstraintKind] = dict(CONSTRAINTS)
        self.estimators: dict[str, Any] = dict(ESTIMATORS)
        self.estimator_tail: frozenset[str] = TAIL
        self.sources: dict[str, str] = {
            f.name[:-4]: f.read_text() for f in sorted(resources.files(__package__).iterdir(),
                                                       key=lambda f: f.name)
            if f.name.endswith(".ppl")}

    def constraint(self, spec: tuple) -> "ParamConstraint":
        """The unconstrained representation of a ``param``'s constraint.

        ``spec`` is the compiler's description: ``("real",)``, ``("lower", a)``,
        ``("upper", b)``, ``("interval", a, b)`` or ``("simplex",)``.
        """
        kind = spec[0]
        if kind == "real":
            c = constraint_for_bounds()
        elif kind == "lower":
            c = constraint_for_bounds(lower=spec[1])
        elif kind == "upper":
            c = constraint_for_bounds(upper=spec[1])
        elif kind == "interval":
            c = constraint_for_bounds(lower=spec[1], upper=spec[2])
        else:
            c = constraint_for(kind)
        return ParamConstraint(c)

    def with_externs(self, externs: dict[str, Any]) -> "StandardLibrary":
        """A copy whose functions include Python functions passed in at load time, and
        modules (``ppl.flax_module``) with learnable parameters and their initialisers."""
        from .externs import extern_function

        lib = StandardLibrary.__new__(StandardLibrary)
        lib.__dict__.update(self.__dict__)
        lib.functions = dict(self.functions)
        lib.initializers = dict(self.initializers)
        for name, fn in externs.items():
            lib.functions[name] = f = extern_function(name, fn)
            # A learnable extern's parameters are drawn by its module's init: one initialiser
            # each, under a dotted name no program can write (enc.Dense_0.kernel).
            lib.initializers.update(getattr(f, "initializers", dict)())
        return lib


class ParamConstraint:
    """to_constrained / to_unconstrained for one constraint (numpyro's ``biject_to``)."""

    def __init__(self, constraint: Any):
        self.constraint = constraint

    def to_constrained(self, u: Any) -> Any:
        return to_constrained(self.constraint, u)

    def to_unconstrained(self, v: Any) -> Any:
        return to_unconstrained(self.constraint, v)

    def unconstrained_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return unconstrained_shape(self.constraint, shape)


STANDARD = StandardLibrary()
