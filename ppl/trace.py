"""Traces: the random choices of one run of a generative function.

A :class:`Trace` maps addresses (``"p"``, ``"y/x"``) to values, with the
function's return value beside them. Values of choices inside plates and
loops are stacked along leading axes. A trace is a JAX pytree, so it can be
passed to ``jax.jit``, ``vmap`` and back into ``density``.

    >>> import jax.numpy as jnp
    >>> t = Trace({"p": jnp.float32(0.3), "y/x": jnp.zeros(2)})
    >>> t["y"]["x"].shape, t.addresses
    ((2,), ('p', 'y/x'))
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import jax
import numpy as np


@jax.tree_util.register_pytree_node_class
class Trace(Mapping[str, Any]):
    def __init__(self, values: Mapping[str, Any], retval: Any = None):
        self._values = dict(sorted(values.items()))
        self.retval = retval

    # -- Mapping over full addresses
    def __getitem__(self, address: str) -> Any:
        if address in self._values:
            return self._values[address]
        prefix = address.rstrip("/") + "/"
        sub = {a[len(prefix):]: v for a, v in self._values.items() if a.startswith(prefix)}
        if sub:
            return Trace(sub)
        from .errors import DataError, Diagnostic, did_you_mean

        raise DataError(Diagnostic(f"the trace has no address '{address}'",
                                   help=did_you_mean(address, self._values)
                                   or f"its addresses: {', '.join(self._values) or 'none'}"))

    def get(self, address: str, default: Any = None) -> Any:
        """The value (or sub-trace) at ``address``, or ``default`` if there is none."""
        return self[address] if address in self else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, address: object) -> bool:
        try:
            self[address]  # type: ignore[index]
            return True
        except Exception:
            return False

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(self._values)

    @property
    def values_by_address(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:
        lines = ["Trace("]
        for a, v in self._values.items():
            arr = np.asarray(v)
            if arr.size <= 6:
                text = np.array2string(arr, precision=4, separator=", ")
            else:
                text = f"{arr.dtype}{list(arr.shape)} mean={arr.mean():.4g}"
            lines.append(f"  {a}: {text}")
        if self.retval is not None and not (isinstance(self.retval, tuple) and not self.retval):
            lines.append(f"  retval: {self.retval!r}")
        lines.append(")")
        return "\n".join(lines)

    # -- pytree
    def tree_flatten(self):
        keys = tuple(self._values)
        return (tuple(self._values[k] for k in keys), self.retval), keys

    @classmethod
    def tree_unflatten(cls, keys, children):
        values, retval = children
        t = cls.__new__(cls)
        t._values = dict(zip(keys, values))
        t.retval = retval
        return t
