"""Multi-digit images for Attend-Infer-Repeat: 0, 1 or 2 scikit-learn digits on a 32x32 canvas.

Each of the bundled 8x8 digits (``sklearn.datasets.load_digits``, grey levels / 16, so in
[0, 1]) is upsampled 2x by pixel repetition to 16x16. An image has a count drawn uniformly
from {0, 1, 2}; each of its digits is a uniformly random digit image placed at an integer
offset (row, col) uniform in [0, 16] x [0, 16] of a black 32x32 canvas, overlapping digits
combined by max. Deterministic given the seed (``np.random.default_rng(seed)``).

    >>> images, counts = multi_digits(4)
    >>> images.shape, images.dtype, counts.dtype
    ((4, 32, 32), dtype('float32'), dtype('int32'))
"""

from __future__ import annotations

import numpy as np

CANVAS, DIGIT, MAX_COUNT = 32, 16, 2


def digit_images() -> np.ndarray:
    """The 1797 scikit-learn digits, in [0, 1], upsampled to 16x16: float32 [1797, 16, 16]."""
    from sklearn.datasets import load_digits

    small = load_digits().images / 16.0
    return np.stack([np.kron(d, np.ones((2, 2))) for d in small]).astype(np.float32)


def multi_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (float32 [n, 32, 32] in [0, 1]) and their digit counts (int32 [n])."""
    rng = np.random.default_rng(seed)
    digits = digit_images()
    images = np.zeros((n, CANVAS, CANVAS), np.float32)
    counts = rng.integers(0, MAX_COUNT + 1, size=n).astype(np.int32)
    for i in range(n):
        for _ in range(counts[i]):
            d = digits[rng.integers(len(digits))]
            r, c = rng.integers(0, CANVAS - DIGIT + 1, size=2)
            window = images[i, r:r + DIGIT, c:c + DIGIT]
            np.maximum(window, d, out=window)
    return images, counts
