"""The builtin deterministic functions: operators, elementwise math, reductions, shapes, linear algebra.

:data:`FUNCTIONS` maps each name a program can call (and each operator the
compiler lowers, ``a + b`` to ``add``) to a :class:`JaxFunction`: its
parameters, a one-line doc and its JAX implementation. The table holds one row
per function; the implementations are jax.numpy, jax.nn and jax.scipy.special
calls, never rewritten here.

Invariants:

- ``result_type`` is ``jax.eval_shape`` of ``impl``: array parameters are
  traced from their ArrayTypes, literals and static parameters are passed as
  the Python values they are, so type and implementation cannot disagree;
- every shape error is a ``ValueError`` whose message starts with the
  function's name and says which shapes did not fit;
- a static parameter (an axis, a size) must be a Python value; a static
  shape may be given as separate sizes or as one tuple (``zeros(3, 4)`` or
  ``zeros((3, 4))``).

    >>> from ppl.compiler.types import ArrayType
    >>> FUNCTIONS["sum"].result_type({"x": ArrayType("float32", (3, 4)), "axis": 0})
    real[4]
    >>> FUNCTIONS["matmul"].result_type({"a": ArrayType("float32", (3, 4)), "b": ArrayType("float32", (5,))})
    Traceback (most recent call last):
    ...
    ValueError: matmul: shapes [3, 4] and [5] do not fit: inner dimensions 4 and 5 differ
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import jax.scipy.special as special
import numpy as np

from ..compiler.library import REQUIRED, ParamSpec
from ..compiler.types import ArrayType
from .abstract import abstract_type, as_real, first_line, format_shape, shape_of
from .special import softplus

Explain = Callable[[Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class JaxFunction:
    """A builtin function: named parameters, a doc line and a JAX implementation.

    ``explain``, if given, turns the bound arguments of a call that failed to
    trace into a precise reason (``inner dimensions 4 and 5 differ``); when
    it has nothing to say, JAX's own first line is used.
    """

    name: str
    params: tuple[ParamSpec, ...]
    fn: Callable[..., Any]
    doc: str
    explain: Explain | None = None

    def impl(self, **bound: Any) -> Any:
        """Run the JAX implementation on bound arguments (arrays, and Python values for static ones)."""
        # Positionally, in the order of ``params``: JAX names its arguments differently.
        return self.fn(*[_freeze(bound[p.name]) if p.static else bound[p.name] for p in self.params])

    def result_type(self, bound: Mapping[str, Any]) -> ArrayType:
        """The ArrayType of the result, or ``ValueError`` naming the function and the shapes."""
        self._check_kinds(bound)
        names = [p.name for p in self.params]
        try:
            return abstract_type(lambda *args: self.impl(**dict(zip(names, args))),
                                 [_freeze(bound[n]) for n in names])
        except Exception as error:  # JAX raises TypeError, ValueError, IndexError...; rephrase them all
            reason = self.explain(bound) if self.explain else None
            raise ValueError(f"{self.name}: {reason or _describe(self.params, bound) + ': ' + first_line(error)}"
                             ) from None

    def _check_kinds(self, bound: Mapping[str, Any]) -> None:
        for p in self.params:
            values = bound[p.name] if p.variadic else (bound[p.name],)
            for value in values:
                if p.static and _contains_array(value):
                    raise ValueError(f"{self.name}: {p.name} must be known when the program is compiled "
                                     "(a literal or a size), not a computed array")
                if not p.static and not isinstance(value, (ArrayType, bool, int, float, np.number)):
                    raise ValueError(f"{self.name}: {p.name} must be an array, got {value!r}")


def _freeze(value: Any) -> Any:
    """Lists (from the compiler's static values) become tuples, which JAX takes as shapes and axes."""
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


def _contains_array(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_contains_array(v) for v in value)
    return isinstance(value, ArrayType)


def _describe(params: tuple[ParamSpec, ...], bound: Mapping[str, Any]) -> str:
    """``x has shape [3, 4] and axis = 2``: what a failed call was given."""
    parts = []
    for p in params:
        value = bound[p.name]
        if p.static:
            parts.append(f"{p.name} = {_freeze(value)!r}")
        elif p.variadic:
            parts.append(f"{p.name} have shapes {', '.join(format_shape(shape_of(v)) for v in value) or 'none'}")
        else:
            parts.append(f"{p.name} has shape {format_shape(shape_of(value))}")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def _shape(sizes: tuple) -> tuple:
    """A static shape given as sizes or as one tuple of sizes."""
    return tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else tuple(sizes)


# -- explanations of shape errors ----------------------------------------------

def _broadcasting(bound: Mapping[str, Any]) -> str | None:
    shapes = [shape_of(v) for v in bound.values() if isinstance(v, ArrayType)]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return f"shapes {' and '.join(format_shape(s) for s in shapes)} do not broadcast"
    return None


def _contraction(bound: Mapping[str, Any]) -> str | None:
    """For ``matmul`` and ``dot``: the last axis of a against the second-to-last (or only) axis of b."""
    a, b = shape_of(bound["a"]), shape_of(bound["b"])
    if not a or not b:
        return f"needs arrays with at least one dimension, got shapes {format_shape(a)} and {format_shape(b)}"
    inner_b = b[-2] if len(b) >= 2 else b[0]
    if a[-1] != inner_b:
        return (f"shapes {format_shape(a)} and {format_shape(b)} do not fit: "
                f"inner dimensions {a[-1]} and {inner_b} differ")
    try:
        np.broadcast_shapes(a[:-2], b[:-2])
    except ValueError:
        return (f"shapes {format_shape(a)} and {format_shape(b)} do not fit: batch dimensions "
                f"{format_shape(a[:-2])} and {format_shape(b[:-2])} do not broadcast")
    return None


def _square(bound: Mapping[str, Any]) -> str | None:
    shape = shape_of(bound["x"] if "x" in bound else bound["a"])
    if len(shape) < 2 or shape[-1] != shape[-2]:
        return f"needs a square matrix (or a batch of them), got shape {format_shape(shape)}"
    if "b" in bound:
        b = shape_of(bound["b"])
        rows = b[-1] if len(b) == 1 else (b[-2] if len(b) >= 2 else None)
        if rows != shape[-1]:
            return f"a has shape {format_shape(shape)}, so b needs {shape[-1]} rows, but has shape {format_shape(b)}"
    return None


def _single_axis(bound: Mapping[str, Any]) -> str | None:
    axis = bound["axis"]
    if axis is not None and not isinstance(axis, int):
        return f"axis must be one integer or None, got {_freeze(axis)!r}"
    return None


# -- the table -------------------------------------------------------------------

X, A, B = ParamSpec("x"), ParamSpec("a"), ParamSpec("b")


def _static(name: str, default: Any = REQUIRED) -> ParamSpec:
    return ParamSpec(name, static=True, default=default)


def _unary(name: str, fn: Callable, doc: str) -> JaxFunction:
    return JaxFunction(name, (X,), lambda x: fn(x), doc)


def _real_unary(name: str, fn: Callable, doc: str) -> JaxFunction:
    """A function of reals: integer and boolean arguments are promoted, as jnp.exp does (jax.nn's do not)."""
    return JaxFunction(name, (X,), lambda x: fn(as_real(x)), doc)


def _binary(name: str, fn: Callable, doc: str) -> JaxFunction:
    return JaxFunction(name, (A, B), lambda a, b: fn(a, b), doc, _broadcasting)


def _reduction(name: str, fn: Callable, doc: str, axis: Any = None, explain: Explain | None = None) -> JaxFunction:
    return JaxFunction(name, (X, _static("axis", axis)), lambda x, axis: fn(x, axis=axis), doc, explain)


def spatial_transformer(image, scale, shift, height: int, width: int):
    """Attend-Infer-Repeat's differentiable window (Jaderberg et al. 2015): the
    ``height × width`` image read from ``image`` (``[..., H, W]``) at the points
    ``scale·g + shift`` of a grid ``g`` over [-1, 1]² (coordinates of the whole image
    in [-1, 1]; ``shift`` is (row, column)), bilinear, zero outside. ``scale < 1``
    zooms in (an encoder's glimpse); ``spatial_transformer(patch, 1/s, -t/s, H, W)``
    writes a patch into a canvas. Leading axes of ``image``, ``scale`` (``[...]``) and
    ``shift`` (``[..., 2]``) broadcast; differentiable in all three (piecewise linear).

        >>> img = jnp.arange(9.0).reshape(3, 3)
        >>> bool(jnp.allclose(spatial_transformer(img, 1.0, jnp.zeros(2), 3, 3), img))
        True
    """
    image, scale, shift = jnp.asarray(image), jnp.asarray(scale), jnp.asarray(shift)
    rows, cols = image.shape[-2:]
    if shift.shape[-1:] != (2,):
        raise ValueError(f"spatial_transformer: shift is (row, column), shape [..., 2], "
                         f"not {list(shift.shape)}")
    # The grid is axis-aligned, so bilinear interpolation with zeros outside is separable:
    # out = Wy @ image @ Wx^T, with the tent weights max(0, 1 - |p - r|) of each sampled
    # coordinate p (in pixels) for each pixel row (column) r. Two small matrix products,
    # cheaper to compile and run than a gather (map_coordinates), the same values.
    def tent(s, t, n_out, n_in):
        g = jnp.linspace(-1.0, 1.0, n_out)
        p = (s[..., None] * g + t[..., None] + 1.0) * 0.5 * (n_in - 1)  # [..., n_out]
        return jnp.maximum(0.0, 1.0 - jnp.abs(p[..., None] - jnp.arange(n_in)))

    wy = tent(scale, shift[..., 0], height, rows)  # [..., height, rows]
    wx = tent(scale, shift[..., 1], width, cols)  # [..., width, cols]
    return jnp.einsum("...hr,...rc,...wc->...hw", wy.astype(image.dtype), image,
                      wx.astype(image.dtype))


_ROWS = [
    # operators (the compiler lowers source operators to these)
    _binary("add", jnp.add, "a + b, elementwise with broadcasting."),
    _binary("sub", jnp.subtract, "a - b, elementwise with broadcasting."),
    _binary("mul", jnp.multiply, "a * b, elementwise with broadcasting."),
    _binary("div", jnp.true_divide, "a / b, true division (integers give reals)."),
    _binary("floor_divide", jnp.floor_divide, "a // b, the floor of a / b (ints stay ints, as in Python)."),
    _binary("mod", jnp.mod, "a % b, with the sign of b (as in Python)."),
    _binary("pow", jnp.power, "a ** b, elementwise."),
    _unary("neg", jnp.negative, "-x."),
    JaxFunction("matmul", (A, B), jnp.matmul, "a @ b, matrix product (batched over leading axes).", _contraction),
    _binary("eq", jnp.equal, "a == b, elementwise."),
    _binary("ne", jnp.not_equal, "a != b, elementwise."),
    _binary("lt", jnp.less, "a < b, elementwise."),
    _binary("le", jnp.less_equal, "a <= b, elementwise."),
    _binary("gt", jnp.greater, "a > b, elementwise."),
    _binary("ge", jnp.greater_equal, "a >= b, elementwise."),
    _binary("logical_and", jnp.logical_and, "a and b, elementwise."),
    _binary("logical_or", jnp.logical_or, "a or b, elementwise."),
    _unary("logical_not", jnp.logical_not, "not x, elementwise."),
    # elementwise math
    _unary("exp", jnp.exp, "e to the power x."),
    _unary("log", jnp.log, "Natural logarithm."),
    _unary("log1p", jnp.log1p, "log(1 + x), accurate for small x."),
    _unary("expm1", jnp.expm1, "exp(x) - 1, accurate for small x."),
    _unary("sqrt", jnp.sqrt, "Square root."),
    _unary("square", jnp.square, "x * x."),
    _unary("abs", jnp.abs, "Absolute value."),
    _unary("sign", jnp.sign, "-1, 0 or 1, the sign of x."),
    _unary("sin", jnp.sin, "Sine."),
    _unary("cos", jnp.cos, "Cosine."),
    _unary("tan", jnp.tan, "Tangent."),
    _unary("tanh", jnp.tanh, "Hyperbolic tangent."),
    _unary("sinh", jnp.sinh, "Hyperbolic sine."),
    _unary("cosh", jnp.cosh, "Hyperbolic cosine."),
    _unary("arctan", jnp.arctan, "Inverse tangent."),
    _unary("floor", jnp.floor, "Largest integer not above x."),
    _unary("ceil", jnp.ceil, "Smallest integer not below x."),
    _unary("round", jnp.round, "Nearest integer (halves to even)."),
    _real_unary("sigmoid", jax.nn.sigmoid, "1 / (1 + exp(-x))."),
    _real_unary("log_sigmoid", jax.nn.log_sigmoid, "log(sigmoid(x)), computed stably."),
    _real_unary("softplus", softplus, "log(1 + exp(x)), computed stably."),
    _unary("relu", jax.nn.relu, "max(x, 0)."),
    JaxFunction("leaky_relu", (X, _static("negative_slope", 0.01)),
                lambda x, negative_slope: jax.nn.leaky_relu(x, negative_slope), "x if x >= 0 else negative_slope * x."),
    JaxFunction("elu", (X, _static("alpha", 1.0)), lambda x, alpha: jax.nn.elu(x, alpha),
                "x if x > 0 else alpha * (exp(x) - 1)."),
    _real_unary("gelu", jax.nn.gelu, "Gaussian error linear unit (tanh approximation)."),
    _real_unary("lgamma", special.gammaln, "log |Gamma(x)|."),
    _real_unary("digamma", special.digamma, "The derivative of lgamma."),
    _real_unary("logit", special.logit, "log(x / (1 - x)), the inverse of sigmoid."),
    _real_unary("erf", special.erf, "The error function."),
    JaxFunction("clip", (X, ParamSpec("lo"), ParamSpec("hi")), lambda x, lo, hi: jnp.clip(x, lo, hi),
                "x limited to the interval [lo, hi].", _broadcasting),
    _binary("minimum", jnp.minimum, "The smaller of a and b, elementwise."),
    _binary("maximum", jnp.maximum, "The larger of a and b, elementwise."),
    JaxFunction("where", (ParamSpec("cond"), A, B), jnp.where, "a where cond is true, else b, elementwise.",
                _broadcasting),
    _unary("isfinite", jnp.isfinite, "True where x is neither infinite nor NaN."),
    _unary("stop_gradient", jax.lax.stop_gradient,
           "x, with no gradient flowing through it (for surrogate objectives such as dreg)."),
    # reductions (axis: None for all axes, an integer, or a tuple of integers)
    _reduction("sum", jnp.sum, "Sum over axis (all axes by default)."),
    _reduction("mean", jnp.mean, "Mean over axis (all axes by default)."),
    _reduction("prod", jnp.prod, "Product over axis (all axes by default)."),
    _reduction("max", jnp.max, "Maximum over axis (all axes by default)."),
    _reduction("min", jnp.min, "Minimum over axis (all axes by default)."),
    _reduction("logsumexp", special.logsumexp, "log(sum(exp(x))) over axis, computed stably."),
    _reduction("std", jnp.std, "Standard deviation over axis (dividing by n)."),
    _reduction("var", jnp.var, "Variance over axis (dividing by n)."),
    _reduction("argmax", jnp.argmax, "Index of the maximum along one axis (of the flattened array by default).",
               explain=_single_axis),
    _reduction("argmin", jnp.argmin, "Index of the minimum along one axis (of the flattened array by default).",
               explain=_single_axis),
    _reduction("all", jnp.all, "True if every element over axis is true."),
    _reduction("any", jnp.any, "True if some element over axis is true."),
    _reduction("cumsum", jnp.cumsum, "Running sum along axis (default 0).", axis=0, explain=_single_axis),
    _reduction("softmax", jax.nn.softmax, "exp(x) / sum(exp(x)) along axis (default -1).", axis=-1),
    _reduction("log_softmax", jax.nn.log_softmax, "x - logsumexp(x) along axis (default -1).", axis=-1),
    # construction (sizes are static)
    JaxFunction("zeros", (ParamSpec("shape", static=True, variadic=True),),
                lambda shape: jnp.zeros(_shape(shape)), "A real array of zeros: zeros(3, 4)."),
    JaxFunction("ones", (ParamSpec("shape", static=True, variadic=True),),
                lambda shape: jnp.ones(_shape(shape)), "A real array of ones: ones(3, 4)."),
    JaxFunction("arange", (_static("start"), _static("stop", None), _static("step", 1)), jnp.arange,
                "start, start + step, ... below stop, as numpy's arange (arange(n) is 0..n-1)."),
    JaxFunction("linspace", (_static("start"), _static("stop"), _static("num")), jnp.linspace,
                "num evenly spaced reals from start to stop, both included."),
    JaxFunction("eye", (_static("n"),), lambda n: jnp.eye(n), "The n x n identity matrix."),
    JaxFunction("spatial_transformer", (X, ParamSpec("scale"), ParamSpec("shift"), _static("height"),
                                        _static("width")), spatial_transformer,
                "The height x width window of x at scale * grid + shift (bilinear; AIR's transformer)."),
    JaxFunction("one_hot", (X, _static("n")), lambda x, n: jax.nn.one_hot(x, n),
                "Integer indices x as one-hot real vectors of size n (a new last axis)."),
    # shapes
    JaxFunction("reshape", (X, ParamSpec("shape", static=True, variadic=True)),
                lambda x, shape: jnp.reshape(x, _shape(shape)), "x with a new shape of the same size (-1: inferred)."),
    JaxFunction("broadcast_to", (X, ParamSpec("shape", static=True, variadic=True)),
                lambda x, shape: jnp.broadcast_to(x, _shape(shape)), "x repeated to a larger shape, by broadcasting."),
    JaxFunction("transpose", (X, ParamSpec("axes", static=True, variadic=True)),
                lambda x, axes: jnp.transpose(x, _shape(axes) or None),
                "x with its axes permuted (reversed by default)."),
    JaxFunction("concat", (ParamSpec("xs", variadic=True), _static("axis", 0)),
                lambda xs, axis: jnp.concatenate(xs, axis=axis), "The arrays joined along an existing axis."),
    JaxFunction("stack", (ParamSpec("xs", variadic=True), _static("axis", 0)),
                lambda xs, axis: jnp.stack(xs, axis=axis), "The arrays joined along a new axis."),
    _reduction("squeeze", jnp.squeeze, "x without its axes of size 1 (or only the given one)."),
    JaxFunction("expand_dims", (X, _static("axis")), lambda x, axis: jnp.expand_dims(x, axis),
                "x with a new axis of size 1 at position axis."),
    _reduction("flip", jnp.flip, "x with the order of elements reversed along axis (all axes by default)."),
    _reduction("sort", jnp.sort, "x sorted along axis (default -1).", axis=-1),
    JaxFunction("dot", (A, B), jnp.dot, "Dot product of vectors; matrix product for matrices.", _contraction),
    JaxFunction("outer", (A, B), jnp.outer, "Outer product of two vectors: [n] and [m] give [n, m]."),
    _unary("diag", jnp.diag, "The diagonal of a matrix, or the diagonal matrix of a vector."),
    JaxFunction("tril", (X, _static("k", 0)), lambda x, k: jnp.tril(x, k), "x with entries above diagonal k zeroed."),
    JaxFunction("triu", (X, _static("k", 0)), lambda x, k: jnp.triu(x, k), "x with entries below diagonal k zeroed."),
    # linear algebra
    JaxFunction("cholesky", (X,), jnp.linalg.cholesky, "Lower Cholesky factor L of a positive-definite x = L L^T.",
                _square),
    JaxFunction("inv", (X,), jnp.linalg.inv, "Matrix inverse.", _square),
    JaxFunction("logdet", (X,), lambda x: jnp.linalg.slogdet(x)[1], "log |det(x)|.", _square),
    JaxFunction("solve", (A, B), jnp.linalg.solve, "The x with a @ x = b, for a square matrix a.", _square),
    JaxFunction("trace", (X,), lambda x: jnp.trace(x, axis1=-2, axis2=-1), "Sum of the diagonal of a matrix."),
    # casts
    _unary("float", lambda x: jnp.asarray(x).astype(jnp.float32), "x as a real."),
    _unary("int", lambda x: jnp.asarray(x).astype(jnp.int32), "x as an integer, truncated towards zero."),
]

FUNCTIONS: dict[str, JaxFunction] = {row.name: row for row in _ROWS}
