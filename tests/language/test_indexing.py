"""Indexing (new axes, several index arrays) and floor division, against NumPy.

Every expression below is written the same way in ppl and in Python, so each
case is the ppl program's value next to NumPy's ``eval`` of the same text.
All the cases are one ``fn`` (one compile). Gradients through gathers are
JAX's; they are checked against central finite differences in float64.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import ppl

# Index arrays hold negative entries (counted from the end, as in NumPy) and repeats.
B = (np.arange(120.0).reshape(4, 5, 6) - 60.0) / 7.0
I = np.array([0, -1, 2])          # noqa: E741 - the usual name of an index
J = np.array([4, 0, 4])
K = np.array([[1], [-2]])
A = np.array([-7, -6, -1, 0, 1, 6, 7])
D = np.array([2, -2, 3, -3, 5, -5, 4])
X = np.array([-7.5, -6.0, -0.5, 0.0, 0.5, 6.0, 7.25])
Y = np.array([2.0, -2.0, 0.25, -3.0, 5.0, -4.0, 1.5])

INDEXING = [
    "b[i, j]", "b[:, i, j]", "b[i, :, j]", "b[i, None, j]", "b[k, i]", "b[k, i, j]",
    "b[i[:, None], j[None, :]]", "b[None]", "b[:, None]", "b[None, :, None]",
    "b[1, None, :, -1]", "b[i, 0]", "b[0, :, i]", "b[i, 1:3, j]", "b[:, :, None, 0]",
    "b[k, :, 0]", "b[i][:, j]", "b[-1, None]",
]
DIVISION = ["a // d", "x // y", "a // y", "-a // d", "a // d * d + a % d", "x // 2.0",
            "a + d // 2", "2 ** a[4:] // d[4:]"]
STATIC = ["7 // 2", "-7 // 2", "7 // -2", "-7 // -2", "7.5 // 2", "-7.5 // 2.0",
          "1 + 7 // 2 * 3", "2 ** 3 // 3", "-2 ** 2 // 3", "10 // 3 % 2"]


@pytest.fixture(scope="module")
def module():
    items = ", ".join(INDEXING + DIVISION)
    statics = ", ".join(f"zeros({s} + 10)" if "." not in s else s for s in STATIC)
    return ppl.compile(f"""
fn cases(b: real[4, 5, 6], i: int[3], j: int[3], k: int[2, 1], a: int[7], d: int[7],
         x: real[7], y: real[7]) {{
    return ({items})
}}

fn static_cases() {{ return ({statics}) }}

fn shapes(b: real[4, 5, 6], i: int[3], j: int[3], k: int[2, 1]) {{
    return ({", ".join(f"shape({t})" for t in INDEXING)})
}}

fn clamped(v: real[5], positions: int[4]) {{ return v[positions] }}

gen gather(i: int[3], j: int[3], w: real[3]) {{
    b ~ normal(zeros(4, 5, 6), 1.0)
    factor sum(sin(b[i, :, j]) * w[:, None]) + sum(b[i[:, None], 2, j[None, :]] ** 2)
}}
""")


def test_indexing_and_floor_division_match_numpy(module):
    got = module.cases(B, I, J, K, A, D, X, Y)
    env = {"b": B, "i": I, "j": J, "k": K, "a": A, "d": D, "x": X, "y": Y}
    for text, value in zip(INDEXING + DIVISION, got):
        want = eval(text, {}, env)
        assert np.shape(value) == np.shape(want), text
        assert np.allclose(value, want, atol=1e-5), text
        assert np.asarray(value).dtype.kind == np.asarray(want).dtype.kind, text


def test_compile_time_shapes_match_numpy(module):
    # shape() is the type the compiler gives the expression, before anything runs.
    shapes = module.shapes(B, I, J, K)
    env = {"b": B, "i": I, "j": J, "k": K}
    for text, shape in zip(INDEXING, shapes):
        assert tuple(int(n) for n in shape) == eval(text, {}, env).shape, text


def test_static_floor_division_folds_at_compile_time(module):
    # zeros(n + 10) has a shape only if n is a static int, known when compiling.
    for text, value in zip(STATIC, module.static_cases()):
        want = eval(text)
        if isinstance(want, int):
            assert np.shape(value) == (want + 10,), text
        else:
            assert float(value) == want, text


def test_traced_out_of_range_indices_clamp(module):
    v = np.arange(5.0)
    at = np.array([0, 9, -1, -9])
    # A negative index counts from the end (jax.numpy), then the index is clamped.
    want = v[np.clip(np.where(at < 0, at + 5, at), 0, 4)]
    assert np.array_equal(module.clamped(v, at), want)


def test_gradient_through_advanced_indexing_matches_finite_differences(module):
    i, j, w = np.array([0, 3, 0]), np.array([1, -1, 1]), np.array([1.0, 2.0, -3.0])
    g = module.gather(i, j, w)
    point = np.random.default_rng(0).normal(size=(4, 5, 6))
    grad = np.asarray(jax.grad(lambda b: g.density({"b": b}))(point.astype(np.float32)))

    def f(b):  # the same log density in float64 NumPy
        return (-0.5 * np.sum(b ** 2) + np.sum(np.sin(b[i, :, j]) * w[:, None])
                + np.sum(b[i[:, None], 2, j[None, :]] ** 2))

    eps, fd = 1e-6, np.zeros_like(point)
    for idx in np.ndindex(point.shape):
        step = np.zeros_like(point)
        step[idx] = eps
        fd[idx] = (f(point + step) - f(point - step)) / (2 * eps)
    assert np.allclose(grad, fd, atol=1e-4), np.abs(grad - fd).max()
    assert np.any(fd[0] != 0.0)  # repeated indices accumulate into the same elements
