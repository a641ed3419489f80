"""Backbones built locally with the functional API, sized by their arguments."""

import keras

from tfptm.backbones.registry import BACKBONE_NAME, register


def _image_input(input_shape, input_scale, input_offset):
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    return inputs, keras.layers.Rescaling(input_scale, input_offset, name="preprocess")(inputs)


def _conv_bn_relu(x, filters, name, kernel_size=3, strides=1):
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@register("vgg_cnn", source="local", summary="VGG-style CNN: blocks of 3x3 conv-BN-ReLU, 2x2 max-pool between blocks")
def vgg_cnn(input_shape=(32, 32, 3), filters=(32, 64, 128), convs_per_block=2, input_scale=1 / 255.0, input_offset=0.0):
    """A VGG-style CNN returning the last block's feature map.

    Pixels are rescaled inside the model (`pixels * input_scale + input_offset`),
    so callers and exported artifacts feed raw pixel values.

    Example:
    >>> import numpy as np
    >>> backbone = vgg_cnn(input_shape=(8, 8, 1), filters=(8, 16), input_scale=1 / 16)
    >>> backbone(np.zeros((2, 8, 8, 1), "float32")).shape
    TensorShape([2, 4, 4, 16])
    """
    inputs, x = _image_input(input_shape, input_scale, input_offset)
    for b, width in enumerate(filters, start=1):
        for c in range(1, convs_per_block + 1):
            x = _conv_bn_relu(x, width, name=f"block{b}_{c}")
        if b < len(filters):
            x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    return keras.Model(inputs, x, name=BACKBONE_NAME)


@register("resnet_cnn", source="local", summary="ResNet-style CNN: residual blocks of two 3x3 convs, stride 2 between stages")
def resnet_cnn(input_shape=(32, 32, 3), filters=(32, 64, 128), blocks_per_stage=1, input_scale=1 / 255.0, input_offset=0.0):
    """A small ResNet-style CNN (basic residual blocks) returning the last feature map.

    Example:
    >>> import numpy as np
    >>> backbone = resnet_cnn(input_shape=(16, 16, 3), filters=(8, 16))
    >>> backbone(np.zeros((1, 16, 16, 3), "float32")).shape
    TensorShape([1, 8, 8, 16])
    """
    inputs, x = _image_input(input_shape, input_scale, input_offset)
    x = _conv_bn_relu(x, filters[0], name="stem")
    block = 0
    for stage, width in enumerate(filters):
        for i in range(blocks_per_stage):
            block += 1
            strides = 2 if stage > 0 and i == 0 else 1
            name = f"block{block}"
            shortcut = x
            if strides != 1 or shortcut.shape[-1] != width:
                shortcut = keras.layers.Conv2D(width, 1, strides=strides, use_bias=False, name=f"{name}_proj")(x)
                shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
            y = _conv_bn_relu(x, width, name=f"{name}_1", strides=strides)
            y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
            y = keras.layers.BatchNormalization(name=f"{name}_2_bn")(y)
            x = keras.layers.Add(name=f"{name}_add")([shortcut, y])
            x = keras.layers.ReLU(name=f"{name}_out")(x)
    return keras.Model(inputs, x, name=BACKBONE_NAME)
