"""Image augmentation for training batches, applied in the tf.data pipeline and never in the model.

Keeping augmentation out of the model means the trained model, its `.keras`
file and every export (SavedModel, TFLite) contain no random layers: they
compute exactly what was validated. Pass the result as `augment=` to
`tfptm.data.image_folder` (or `tfptm.data.pipeline.finish`); validation data
is never augmented.
"""

import keras

from tfptm.errors import TfptmError

FLIPS = ("horizontal", "vertical", "horizontal_and_vertical", None)


def images(flip="horizontal", rotation=0.05, zoom=0.1, translation=0.1, contrast=0.0, seed=None):
    """A small, sensible set of random image transforms as one `keras.Sequential` named `"augment"`.

    Args:
        flip: `"horizontal"` (default), `"vertical"`, `"horizontal_and_vertical"` or `None`.
        rotation: the largest rotation, as a fraction of a full turn (0.05 is 18 degrees).
        zoom: the largest zoom in or out, as a fraction of the image size.
        translation: the largest shift, as a fraction of height and width.
        contrast: the largest contrast change (0 leaves contrast alone).
        seed: makes the sequence of transforms repeatable; each epoch still
            draws new ones.

    Transforms set to 0 (or `None`) are left out. Pixels stay in their range
    (0..255 for tfptm images); called with `training=False` the block is the identity.

    Example:
    >>> import numpy as np
    >>> augment = images(seed=0)
    >>> batch = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    >>> out = augment(batch, training=True)
    >>> out.shape, bool(np.allclose(augment(batch, training=False), batch))
    (TensorShape([2, 16, 16, 3]), True)
    """
    if flip not in FLIPS:
        raise TfptmError(f"augment.images: flip is {flip!r}; expected one of {FLIPS}")
    for name, value in (("rotation", rotation), ("zoom", zoom), ("translation", translation), ("contrast", contrast)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise TfptmError(f"augment.images: {name} is {value!r}; expected a number in [0, 1)")
    seeds = iter(range(seed, seed + 5)) if seed is not None else iter([None] * 5)
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=next(seeds)))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="reflect", seed=next(seeds)))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="reflect", seed=next(seeds)))
    if translation:
        layers.append(keras.layers.RandomTranslation(translation, translation, fill_mode="reflect", seed=next(seeds)))
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, value_range=(0, 255), seed=next(seeds)))
    if not layers:
        raise TfptmError("augment.images: every transform is off; pass augment=None instead")
    return keras.Sequential(layers, name="augment")
