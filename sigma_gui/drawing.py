"""From a hand drawing to an MNIST-style digit: cropped, scaled into a 20x20 box, centred by mass in 28x28.

MNIST's digits were size-normalised to fit a 20x20 box (keeping their
aspect ratio) and placed in a 28x28 image so that their centre of mass is
at the centre (LeCun, Cortes & Burges, "The MNIST database"). A drawing
gets the same treatment, so a model trained on MNIST sees what it knows.

Example:
    >>> import numpy as np
    >>> from sigma_gui.drawing import to_digit_image
    >>> canvas = np.zeros((280, 280)); canvas[40:240, 130:150] = 1.0   # a thick vertical bar: a "1"
    >>> digit = to_digit_image(canvas)
    >>> digit.shape, round(float(digit.max()), 2), [int(i) for i in np.argwhere(digit > 0.5).mean(axis=0).round()]
    ((28, 28), 1.0, [14, 14])
"""
from __future__ import annotations

import numpy as np


def area_resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """The (size_out, size_in) matrix that resizes a line of pixels by averaging the area each output covers."""
    if size_in < 1 or size_out < 1:
        raise ValueError(f"sizes must be at least 1, got {size_in} -> {size_out}")
    scale = size_in / size_out
    starts = np.arange(size_out)[:, None] * scale
    pixels = np.arange(size_in)[None, :]
    overlap = np.clip(np.minimum(pixels + 1, starts + scale) - np.maximum(pixels, starts), 0.0, None)
    return overlap / scale


def to_digit_image(canvas: np.ndarray, size: int = 28, box: int = 20, threshold: float = 0.05) -> np.ndarray:
    """A drawing (2-d, 0 background .. 1 ink) as a ``size`` x ``size`` image in [0, 1], MNIST-style.

    An empty drawing gives an empty image.
    """
    canvas = np.asarray(canvas, dtype=np.float64)
    if canvas.ndim != 2:
        raise ValueError(f"a drawing is a 2-d array, got shape {canvas.shape}")
    ink = np.argwhere(canvas > threshold)
    image = np.zeros((size, size))
    if len(ink) == 0:
        return image
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0) + 1
    crop = canvas[top:bottom, left:right]
    height, width = crop.shape
    scale = box / max(height, width)
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    small = area_resize_matrix(height, new_height) @ crop @ area_resize_matrix(width, new_width).T
    mass = small.sum()
    rows, columns = np.indices(small.shape)
    centre_row = (rows * small).sum() / mass if mass > 0 else new_height / 2
    centre_column = (columns * small).sum() / mass if mass > 0 else new_width / 2
    top = int(np.clip(round(size / 2 - centre_row - 0.5), 0, size - new_height))
    left = int(np.clip(round(size / 2 - centre_column - 0.5), 0, size - new_width))
    image[top:top + new_height, left:left + new_width] = small
    return np.clip(image, 0.0, 1.0)
