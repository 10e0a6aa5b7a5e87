"""Builtin functions: result types against concrete evaluation, shape errors in words, a few semantics."""

import doctest
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl.compiler.library import bind_arguments
from ppl.compiler.types import ArrayType
from ppl.stdlib.abstract import dtype_name
from ppl.stdlib.functions import FUNCTIONS


def f(*shape):
    return ArrayType("float32", shape)


def i(*shape):
    return ArrayType("int32", shape)


def b(*shape):
    return ArrayType("bool", shape)


def call(*args, **kwargs):
    return args, kwargs


ELEMENTWISE = ("neg exp log log1p expm1 sqrt square abs sign sin cos tan tanh sinh cosh arctan floor ceil round "
               "sigmoid log_sigmoid softplus relu gelu lgamma digamma logit erf isfinite stop_gradient float int").split()
BINARY = "add sub mul div floor_divide mod pow eq ne lt le gt ge minimum maximum".split()
REDUCTIONS = "sum mean prod max min logsumexp std var".split()

# Representative calls of every function: ArrayTypes stand for arrays, other values are literals or static.
CASES = {
    **{name: [call(f()), call(f(2, 3)), call(i(4))] for name in ELEMENTWISE},
    **{name: [call(f(3), f(3)), call(f(2, 1), f(3)), call(f(3), 2.0), call(i(3), 2), call(1, 2.0)] for name in BINARY},
    **{name: [call(f(3, 4)), call(f(3, 4), axis=0), call(f(3, 4), axis=(0, 1)), call(i(2, 3, 4), axis=-1)]
       for name in REDUCTIONS},
    **{name: [call(b(3, 4)), call(b(3, 4), axis=1)] for name in ("all", "any")},
    **{name: [call(b(3), b(2, 3)), call(b(), True)] for name in ("logical_and", "logical_or")},
    "logical_not": [call(b(3)), call(b())],
    "matmul": [call(f(3, 4), f(4, 5)), call(f(3, 4), f(4)), call(f(4), f(4, 5)), call(f(2, 3, 4), f(4, 5)),
               call(f(4), f(4))],
    "leaky_relu": [call(f(3)), call(f(2, 3), negative_slope=0.2)],
    "elu": [call(f(3)), call(f(2, 3), alpha=0.5)],
    "clip": [call(f(3), 0.0, 1.0), call(f(2, 3), f(3), f(2, 1))],
    "where": [call(b(3), f(3), 0.0), call(b(2, 1), f(3), i(2, 3))],
    "argmax": [call(f(3, 4)), call(f(3, 4), axis=1)],
    "argmin": [call(f(3, 4)), call(f(3, 4), 0)],
    "cumsum": [call(f(3, 4)), call(f(3, 4), axis=1), call(i(5))],
    "softmax": [call(f(3, 4)), call(f(3, 4), axis=0)],
    "log_softmax": [call(f(4)), call(f(3, 4), axis=0)],
    "zeros": [call(3), call(2, 3), call((2, 3)), call()],
    "ones": [call(3), call(2, 3), call([2, 3])],
    "arange": [call(5), call(2, 7), call(0, 10, 3)],
    "linspace": [call(0.0, 1.0, 5)],
    "eye": [call(3)],
    "one_hot": [call(i(4), 3), call(i(2, 3), 5)],
    "spatial_transformer": [call(f(6, 6), 0.5, f(2), 3, 3), call(f(4, 6, 6), f(4), f(4, 2), 3, 2)],
    "reshape": [call(f(12), 3, 4), call(f(3, 4), -1), call(f(2, 6), (4, -1))],
    "broadcast_to": [call(f(3), 2, 3), call(f(2, 1), (2, 5))],
    "transpose": [call(f(2, 3, 4)), call(f(2, 3, 4), 1, 0, 2), call(f(3))],
    "concat": [call(f(2, 3), f(4, 3)), call(f(2, 3), f(2, 1), axis=1), call(f(3))],
    "stack": [call(f(3), f(3)), call(f(2, 3), f(2, 3), axis=-1)],
    "squeeze": [call(f(1, 3, 1)), call(f(1, 3, 1), axis=0)],
    "expand_dims": [call(f(3), 0), call(f(2, 3), axis=-1)],
    "flip": [call(f(2, 3)), call(f(2, 3), axis=1)],
    "sort": [call(f(2, 3)), call(f(2, 3), axis=0)],
    "dot": [call(f(3), f(3)), call(f(2, 3), f(3)), call(f(2, 3), f(3, 4))],
    "outer": [call(f(3), f(4))],
    "diag": [call(f(3)), call(f(3, 3))],
    "tril": [call(f(3, 3)), call(f(3, 4), k=1)],
    "triu": [call(f(3, 3)), call(f(2, 3, 4), k=-1)],
    "cholesky": [call(f(3, 3)), call(f(2, 3, 3))],
    "inv": [call(f(3, 3)), call(f(2, 3, 3))],
    "logdet": [call(f(3, 3)), call(f(2, 3, 3))],
    "solve": [call(f(3, 3), f(3)), call(f(3, 3), f(3, 2))],
    "trace": [call(f(3, 3)), call(f(2, 3, 3))],
}
CASES["float"].append(call(b(3)))
CASES["int"].append(call(-1.7))
IDS = [(name, k) for name in CASES for k in range(len(CASES[name]))]


def array_slots(tree):
    """The ArrayTypes in a call, in order."""
    return [leaf for leaf in jax.tree_util.tree_leaves(tree) if isinstance(leaf, ArrayType)]


def fill(tree, arrays):
    """The call with each ArrayType replaced by the next of ``arrays``."""
    it = iter(arrays)
    return jax.tree_util.tree_map(lambda leaf: next(it) if isinstance(leaf, ArrayType) else leaf, tree)


def example(t, rng):
    if t.dtype == "bool":
        return rng.random(t.shape) < 0.5
    if t.dtype == "int32":
        return rng.integers(0, 3, t.shape).astype(np.int32)
    return rng.standard_normal(t.shape).astype(np.float32)


def evaluate(arrays):
    """Every case's impl on concrete arrays, as one program."""
    out = {}
    for (name, k), values in zip(IDS, arrays):
        args, kwargs = fill(CASES[name][k], values)
        out[name, k] = FUNCTIONS[name].impl(**bind_arguments(name, FUNCTIONS[name].params, args, kwargs))
    return out


@pytest.fixture(scope="module")
def results(quick_jit):
    rng = np.random.default_rng(0)
    arrays = [[example(t, rng) for t in array_slots(CASES[name][k])] for name, k in IDS]
    return quick_jit(evaluate, arrays)


def test_cases_cover_every_function():
    assert set(CASES) == set(FUNCTIONS)


@pytest.mark.parametrize("name, k", IDS)
def test_result_type_matches_evaluation(name, k, results):
    fn = FUNCTIONS[name]
    args, kwargs = CASES[name][k]
    expected = fn.result_type(bind_arguments(name, fn.params, args, kwargs))
    out = results[name, k]
    assert ArrayType(dtype_name(out.dtype), tuple(out.shape)) == expected


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_is_described(name):
    fn = FUNCTIONS[name]
    assert fn.name == name and fn.doc and "\n" not in fn.doc
    assert len({p.name for p in fn.params}) == len(fn.params)


@pytest.mark.parametrize("name, args, kwargs, words", [
    ("add", (f(3), f(4)), {}, "add: shapes [3] and [4] do not broadcast"),
    ("mul", (f(2, 3), f(3, 2)), {}, "mul: shapes [2, 3] and [3, 2] do not broadcast"),
    ("where", (b(3), f(4), 0.0), {}, "where: shapes [3] and [4] do not broadcast"),
    ("clip", (f(3), f(4), 1.0), {}, "clip: shapes [3] and [4] do not broadcast"),
    ("matmul", (f(3, 4), f(5)), {}, "matmul: shapes [3, 4] and [5] do not fit: inner dimensions 4 and 5 differ"),
    ("matmul", (f(2, 3, 4), f(3, 4, 5)), {}, "batch dimensions [2] and [3] do not broadcast"),
    ("matmul", (f(), f(3)), {}, "matmul: needs arrays with at least one dimension"),
    ("dot", (f(3), f(4)), {}, "dot: shapes [3] and [4] do not fit: inner dimensions 3 and 4 differ"),
    ("sum", (f(3, 4),), {"axis": 2}, "sum: x has shape [3, 4] and axis = 2: axis 2 is out of bounds"),
    ("softmax", (f(3),), {"axis": 1}, "softmax: x has shape [3] and axis = 1"),
    ("argmax", (f(3, 4),), {"axis": (0, 1)}, "argmax: axis must be one integer or None, got (0, 1)"),
    ("reshape", (f(12), 5), {}, "reshape: x has shape [12] and shape = (5,): cannot reshape"),
    ("broadcast_to", (f(3), 4), {}, "broadcast_to: x has shape [3]"),
    ("concat", (f(3, 4), f(3)), {}, "concat: xs have shapes [3, 4], [3]"),
    ("stack", (f(3), f(4)), {}, "stack: xs have shapes [3], [4]"),
    ("transpose", (f(3, 4), 0), {}, "transpose: x has shape [3, 4]"),
    ("squeeze", (f(2, 3),), {"axis": 0}, "squeeze: x has shape [2, 3]"),
    ("expand_dims", (f(3), 5), {}, "expand_dims: x has shape [3]"),
    ("cholesky", (f(3, 4),), {}, "cholesky: needs a square matrix (or a batch of them), got shape [3, 4]"),
    ("logdet", (f(3),), {}, "logdet: needs a square matrix"),
    ("solve", (f(3, 3), f(4)), {}, "solve: a has shape [3, 3], so b needs 3 rows, but has shape [4]"),
    ("one_hot", (i(3), -1), {}, "one_hot:"),
    ("zeros", (-1,), {}, "zeros:"),
    ("sum", (f(3),), {"axis": i()}, "sum: axis must be known when the program is compiled"),
    ("exp", ("e",), {}, "exp: x must be an array"),
])
def test_shape_errors_are_value_errors_in_words(name, args, kwargs, words):
    fn = FUNCTIONS[name]
    with pytest.raises(ValueError) as error:
        fn.result_type(bind_arguments(name, fn.params, args, kwargs))
    assert str(error.value).startswith(f"{name}: ") and words in str(error.value)


def run(name, *args, **kwargs):
    fn = FUNCTIONS[name]
    return np.asarray(fn.impl(**bind_arguments(name, fn.params, args, kwargs)))


def test_semantics_users_rely_on():
    # Operators follow Python: true division, floor division and a remainder with the divisor's
    # sign, truncating int().
    np.testing.assert_allclose(run("div", jnp.array([7, -7]), 2), [3.5, -3.5])
    np.testing.assert_array_equal(run("mod", jnp.array([-1, 4]), 3), [2, 1])
    np.testing.assert_array_equal(run("floor_divide", jnp.array([7, -7]), 2), [3, -4])
    np.testing.assert_array_equal(run("int", jnp.array([-1.7, 1.7])), [-1, 1])
    assert run("arange", 5).dtype == np.int32 and list(run("arange", 5)) == [0, 1, 2, 3, 4]
    assert run("zeros", (2, 3)).shape == run("zeros", 2, 3).shape == (2, 3)
    assert run("transpose", jnp.zeros((2, 3, 4))).shape == (4, 3, 2)
    np.testing.assert_allclose(run("logdet", 2 * jnp.eye(3)), 3 * np.log(2), rtol=1e-6)
    np.testing.assert_allclose(run("leaky_relu", jnp.array([-1.0, 2.0])), [-0.01, 2.0], rtol=1e-6)
    np.testing.assert_allclose(run("softmax", jnp.array([[0.0, 1.0], [2.0, 2.0]])).sum(-1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(run("sigmoid", 0), 0.5)


@pytest.mark.parametrize("module", ["abstract", "distributions", "functions", "initializers", "constraints"])
def test_module_examples_run(module):
    result = doctest.testmod(importlib.import_module(f"ppl.stdlib.{module}"))
    assert result.attempted > 0 and result.failed == 0
