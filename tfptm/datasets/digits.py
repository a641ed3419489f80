"""scikit-learn's bundled handwritten digits: a real data set that needs no download."""

import numpy as np

# Pixel values in the digits images run from 0 to 16; models built for them
# rescale by this inside the graph, so exported models take raw pixels.
DIGITS_PIXEL_MAX = 16.0


def load_digits():
    """Loads the 1,797 8x8 handwritten digit images shipped inside scikit-learn.

    Returns:
        `(images, labels)`: float32 images of shape `(1797, 8, 8, 1)` with raw
        pixel values in `[0, 16]`, and int32 labels in `0..9`.

    Example:
    >>> images, labels = load_digits()
    >>> images.shape, int(labels.max())
    ((1797, 8, 8, 1), 9)
    """
    from sklearn.datasets import load_digits as _sklearn_digits

    bunch = _sklearn_digits()
    images = bunch.images.astype("float32")[..., np.newaxis]
    return images, bunch.target.astype("int32")
