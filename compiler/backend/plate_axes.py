"""Plate axes of batched values: ADEV and its sites carry, per value, the plate
levels (1 = outermost) whose axes lead its array, and map or broadcast over them.

    >>> import jax.numpy as jnp
    >>> lift(jnp.ones(3), (1,), (1, 2), (3, 4)).shape
    (3, 4)
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def union(axes_list) -> tuple:
    return tuple(sorted(set().union(*axes_list))) if axes_list else ()


def vmap_levels(fn: Callable, axes_list: list[tuple], levels: tuple) -> Callable:
    """``fn`` mapped over the plate ``levels``; an input maps at the levels it has."""
    for level in reversed(levels):
        fn = jax.vmap(fn, in_axes=tuple(0 if level in axes else None for axes in axes_list))
    return fn


def lift(x, from_axes: tuple, to_axes: tuple, lead: tuple):
    """Broadcast an array with plate axes ``from_axes`` to ``to_axes`` (a superset);
    ``lead[l - 1]`` is the size of plate level l."""
    if tuple(from_axes) == tuple(to_axes):
        return x
    x = jnp.asarray(x)
    rest = x.shape[len(from_axes):]
    shape = tuple(x.shape[from_axes.index(l)] if l in from_axes else 1 for l in to_axes)
    return jnp.broadcast_to(x.reshape(shape + rest), tuple(lead[l - 1] for l in to_axes) + rest)


def full_levels(lead: tuple) -> tuple:
    return tuple(range(1, len(lead) + 1))
