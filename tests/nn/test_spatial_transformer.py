"""The spatial transformer (AIR's differentiable window): values by hand, and its
gradient in the image, the scale and the shift against central finite differences
(float64), away from the pixel grid's kinks (bilinear is piecewise linear)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl.stdlib.functions import spatial_transformer


def test_identity_shift_and_zoom():
    img = jnp.arange(25.0).reshape(5, 5)
    np.testing.assert_allclose(spatial_transformer(img, 1.0, jnp.zeros(2), 5, 5), img, atol=1e-5)
    # a shift of one pixel (2/(5-1) in [-1, 1] coordinates) down reads the next row
    down = spatial_transformer(img, 1.0, jnp.array([0.5, 0.0]), 5, 5)
    np.testing.assert_allclose(down[:-1], img[1:], atol=1e-5)
    np.testing.assert_allclose(down[-1], 0.0, atol=1e-6)  # zero outside
    # zooming in on the centre: scale 0.5 reads the middle 3 x 3 on a 3 x 3 grid
    np.testing.assert_allclose(spatial_transformer(img, 0.5, jnp.zeros(2), 3, 3),
                               img[1:4, 1:4], atol=1e-5)


def test_writing_a_patch_into_a_canvas_inverts_the_glimpse():
    patch = jnp.ones((4, 4))
    s, t = 0.5, jnp.array([0.2, -0.3])
    canvas = spatial_transformer(patch, 1.0 / s, -t / s, 20, 20)
    glimpse = spatial_transformer(canvas, s, t, 4, 4)
    assert float(canvas.sum()) > 0 and float(canvas.max()) <= 1.0 + 1e-6
    np.testing.assert_allclose(glimpse[1:-1, 1:-1], 1.0, atol=0.05)


@pytest.mark.parametrize("inside", [True, False])
def test_gradient_matches_finite_differences(inside):
    """Inside the image, and for windows that run past its edge (zero padding there)."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        img = jnp.asarray(rng.normal(size=(2, 7, 7)))
        scale = jnp.array([0.63, 0.81])
        shift = (jnp.array([[0.113, -0.071], [-0.052, 0.137]]) if inside
                 else jnp.array([[0.613, -0.571], [-0.552, 0.437]]))
        w = jnp.asarray(rng.normal(size=(2, 5, 5)))

        def f(img, scale, shift):
            return jnp.sum(w * spatial_transformer(img, scale, shift, 5, 5))

        grads = jax.grad(f, argnums=(0, 1, 2))(img, scale, shift)
        eps = 1e-6
        for i, x in enumerate((img, scale, shift)):
            flat = np.asarray(x).ravel()
            fd = np.empty_like(flat)
            for j in range(flat.size):
                up, down = flat.copy(), flat.copy()
                up[j] += eps
                down[j] -= eps
                args = [img, scale, shift]
                args[i] = jnp.asarray(up.reshape(x.shape))
                hi = f(*args)
                args[i] = jnp.asarray(down.reshape(x.shape))
                fd[j] = (hi - f(*args)) / (2 * eps)
            np.testing.assert_allclose(np.asarray(grads[i]).ravel(), fd, rtol=1e-5, atol=1e-7)


def test_in_a_program_with_batched_windows():
    m = ppl.compile("fn glimpse(img: real[N, 6, 6], s: real[N], t: real[N, 2]) {\n"
                    "    return spatial_transformer(img, s, t, 3, 3)\n}")
    img = np.ones((4, 6, 6), np.float32)
    out = m.glimpse(img, np.full(4, 0.5, np.float32), np.zeros((4, 2), np.float32))
    assert out.shape == (4, 3, 3)
    np.testing.assert_allclose(out, 1.0, atol=1e-5)
    with pytest.raises(ppl.PPLError):
        m2 = ppl.compile("fn g(img: real[6, 6], t: real[3]) {\n"
                         "    return spatial_transformer(img, 1.0, t, 3, 3)\n}")
        m2.g(np.ones((6, 6), np.float32), np.zeros(3, np.float32))  # a shift is (row, column)
