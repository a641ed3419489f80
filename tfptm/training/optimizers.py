"""Optimizers for fine-tuning: AdamW without decay on biases and norms, warmup
then decay schedules, clipping, and per-variable learning-rate multipliers
(discriminative rates, layer-wise rate decay) for any Keras optimizer (floor 3).

The options live in the optimizer's config, so they survive
`keras.optimizers.serialize` and with it `tfptm.training.recompile` (each
fine-tuning stage) and `.keras` files.
"""

import math
import re

import keras
from keras import ops

from tfptm.backbones.registry import blocks
from tfptm.build import backbone_of
from tfptm.errors import TfptmError

#: Variable names (the last part of a variable's path) that get no weight decay:
#: biases and the scale and offset of BatchNormalization, LayerNormalization and GroupNormalization.
NO_DECAY = ("bias", "gamma", "beta")
DECAYS = ("linear", "cosine")
_PACKAGE = "tfptm"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak_learning_rate` over `warmup_steps`, then
    linear or cosine decay to `final_learning_rate` at `total_steps` (held there after).

    With `decay=None` the rate stays at the peak after warmup. Steps count
    optimizer updates from 0, so the first update (step 0) uses rate 0 when
    there is warmup. A fresh optimizer per fine-tuning stage starts again at
    step 0: `total_steps` counts the steps of one stage.

    Example:
    >>> schedule = WarmupDecay(1e-3, total_steps=100, warmup_steps=10, decay="linear")
    >>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 55, 100, 200)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0, 0.0]
    """

    def __init__(self, peak_learning_rate, total_steps=None, warmup_steps=0, decay="linear", final_learning_rate=0.0):
        if decay is not None and decay not in DECAYS:
            raise TfptmError(f"WarmupDecay: decay is {decay!r}; expected one of {', '.join(DECAYS)} or None")
        if not peak_learning_rate > 0 or final_learning_rate < 0:
            raise TfptmError(
                f"WarmupDecay: peak_learning_rate {peak_learning_rate} and final_learning_rate {final_learning_rate}; "
                "expected peak > 0 and final >= 0"
            )
        if warmup_steps < 0 or (decay is not None and (total_steps is None or total_steps <= warmup_steps)):
            raise TfptmError(
                f"WarmupDecay: warmup_steps {warmup_steps}, total_steps {total_steps} with decay {decay!r}; "
                "expected 0 <= warmup_steps < total_steps (total_steps is needed to decay)"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.final_learning_rate = float(final_learning_rate)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak, final = self.peak_learning_rate, self.final_learning_rate
        rate = ops.convert_to_tensor(peak, "float32")
        if self.decay is not None:
            span = float(self.total_steps - self.warmup_steps)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            shape = 1.0 - progress if self.decay == "linear" else 0.5 * (1.0 + ops.cos(math.pi * progress))
            rate = final + (peak - final) * shape
        if self.warmup_steps:
            rate = ops.where(step < self.warmup_steps, peak * step / self.warmup_steps, rate)
        return rate

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "final_learning_rate": self.final_learning_rate,
        }


def _multiplier(path, multipliers):
    """The multiplier of the longest key that is `path` or a parent of it ("block1" covers "block1/conv/kernel")."""
    best, best_length = 1.0, -1
    for key, value in multipliers.items():
        if (path == key or path.startswith(key + "/")) and len(key) > best_length:
            best, best_length = value, len(key)
    return best


def _scaled_class(base):
    """A subclass of the optimizer class `base` with per-variable rates and decay exclusions, registered for Keras."""

    class Scaled(base):
        def __init__(self, *args, lr_multipliers=None, no_decay=NO_DECAY, **kwargs):
            super().__init__(*args, **kwargs)
            self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}
            self.no_decay = list(no_decay or ())

        def build(self, var_list):
            # Weight decay is applied in `update_step` at each variable's own rate, so Keras's is switched off.
            self.exclude_from_weight_decay(var_list=var_list)
            self._tfptm_scale = {self._var_key(v): _multiplier(v.path, self.lr_multipliers) for v in var_list}
            self._tfptm_decay = {self._var_key(v) for v in var_list if v.name not in self.no_decay}
            super().build(var_list)

        def update_step(self, gradient, variable, learning_rate):
            # Keras's TensorFlow optimizers call this once per variable (per replica under tf.distribute),
            # so scaling the rate here works for every optimizer; scaling gradients would not (Adam ignores it).
            key = self._var_key(variable)
            rate = ops.cast(learning_rate, variable.dtype) * self._tfptm_scale.get(key, 1.0)
            if self.weight_decay and key in self._tfptm_decay:
                self.assign_sub(variable, variable * ops.cast(self.weight_decay, variable.dtype) * rate)
            return super().update_step(gradient, variable, rate)

        def get_config(self):
            return {**super().get_config(), "lr_multipliers": dict(self.lr_multipliers), "no_decay": list(self.no_decay)}

    Scaled.__name__ = Scaled.__qualname__ = f"Scaled{base.__name__}"
    Scaled.__doc__ = f"`{base.__name__}` with per-variable learning-rate multipliers and decay exclusions (tfptm)."
    return keras.saving.register_keras_serializable(package=_PACKAGE)(Scaled)


_SCALED = {}


def scaled_class(base):
    """The tfptm subclass of an optimizer class: per-variable rates (`lr_multipliers`) and
    names without weight decay (`no_decay`), both kept in its config.

    Example:
    >>> import keras
    >>> scaled_class(keras.optimizers.SGD).__name__
    'ScaledSGD'
    """
    if getattr(base, "_tfptm_scaled", False):
        return base
    if base not in _SCALED:
        _SCALED[base] = _scaled_class(base)
        _SCALED[base]._tfptm_scaled = True
    return _SCALED[base]


# Registered at import, so that saved models with any built-in optimizer load in a fresh process.
for _base in (
    keras.optimizers.Adam, keras.optimizers.AdamW, keras.optimizers.SGD, keras.optimizers.RMSprop,
    keras.optimizers.Adagrad, keras.optimizers.Adadelta, keras.optimizers.Adamax, keras.optimizers.Nadam,
    keras.optimizers.Ftrl, keras.optimizers.Lion, keras.optimizers.Lamb, keras.optimizers.Adafactor,
):  # fmt: skip
    scaled_class(_base)


def with_lr_multipliers(optimizer, lr_multipliers, no_decay=None):
    """A copy of `optimizer` (unbuilt, same config) whose variables train at
    `learning_rate * multiplier`.

    `lr_multipliers` maps a variable path (`"block1_conv/kernel"`) or a layer
    path that prefixes it (`"block1_conv"`, `"transformer_layer_0"`) to a
    multiplier; the longest matching key wins, others get 1.0. Decoupled weight
    decay, if any, uses the same per-variable rate. Works for any Keras optimizer class.

    Example:
    >>> import keras
    >>> sgd = with_lr_multipliers(keras.optimizers.SGD(0.1), {"backbone_block": 0.5})
    >>> type(sgd).__name__, sgd.get_config()["lr_multipliers"]
    ('ScaledSGD', {'backbone_block': 0.5})
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TfptmError(f"with_lr_multipliers: expected a keras optimizer; got {type(optimizer).__name__}")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise TfptmError("with_lr_multipliers: give the inner optimizer; Keras adds loss scaling itself under mixed_float16")
    config = optimizer.get_config()
    config["lr_multipliers"] = dict(lr_multipliers)
    if no_decay is not None:
        config["no_decay"] = list(no_decay)
    return scaled_class(type(optimizer)).from_config(config)


def layerwise_lr_decay(model, decay):
    """Learning-rate multipliers that shrink with depth: the head trains at 1.0, the
    backbone's top block at `decay`, the next at `decay ** 2`, down to the stem.

    Returns a dict for `with_lr_multipliers` or `optimizer(lr_multipliers=...)`,
    keyed by the paths of the backbone's variables (blocks from
    `tfptm.backbones.blocks`). Variables outside the backbone keep 1.0.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> multipliers = layerwise_lr_decay(model, 0.5)
    >>> multipliers["block2_1_conv/kernel"], multipliers["block1_1_conv/kernel"]
    (0.5, 0.25)
    """
    if not 0 < decay <= 1:
        raise TfptmError(f"layerwise_lr_decay: decay is {decay}; expected 0 < decay <= 1")
    groups = blocks(backbone_of(model))
    multipliers = {}
    for depth, (_, layers) in enumerate(reversed(groups), start=1):
        for layer in layers:
            for variable in layer.weights:
                multipliers[variable.path] = decay**depth
    return multipliers


def optimizer(
    name="adamw",
    learning_rate=1e-3,
    weight_decay=0.01,
    warmup_steps=0,
    warmup_fraction=None,
    decay=None,
    total_steps=None,
    final_learning_rate=0.0,
    clipnorm=None,
    global_clipnorm=None,
    lr_multipliers=None,
    no_decay=NO_DECAY,
    **kwargs,
):
    """Builds a Keras optimizer for fine-tuning.

    Args:
        name: a Keras optimizer name (`"adamw"`, `"adam"`, `"sgd"`, ...).
        learning_rate: the peak rate (after warmup).
        weight_decay: decoupled weight decay (None or 0 for none); never
            applied to variables named in `no_decay` (biases, norm scales and offsets).
        warmup_steps, warmup_fraction: linear warmup length, in steps or as a
            fraction of `total_steps`.
        decay: `"linear"`, `"cosine"` or None: decay after warmup to
            `final_learning_rate` at `total_steps`.
        clipnorm, global_clipnorm: gradient clipping per variable or over all.
        lr_multipliers: per-variable rate multipliers (see `with_lr_multipliers`,
            `layerwise_lr_decay`).
        **kwargs: other arguments of the Keras optimizer (e.g. `momentum`).

    A warmup or decay makes the rate a `WarmupDecay` schedule; `recompile`
    (each `finetune` stage) sets its peak to the stage's learning rate.

    Example:
    >>> opt = optimizer("adamw", 1e-3, warmup_fraction=0.1, decay="cosine", total_steps=100, global_clipnorm=1.0)
    >>> type(opt).__name__, opt.get_config()["learning_rate"]["class_name"], opt.get_config()["no_decay"]
    ('ScaledAdamW', 'WarmupDecay', ['bias', 'gamma', 'beta'])
    """
    if warmup_fraction is not None:
        if total_steps is None or not 0 <= warmup_fraction < 1:
            raise TfptmError(
                f"optimizer: warmup_fraction {warmup_fraction} needs total_steps and 0 <= warmup_fraction < 1"
            )
        warmup_steps = int(round(warmup_fraction * total_steps))
    rate = learning_rate
    if warmup_steps or decay is not None:
        rate = WarmupDecay(learning_rate, total_steps, warmup_steps, decay, final_learning_rate)
    config = {"learning_rate": rate, "clipnorm": clipnorm, "global_clipnorm": global_clipnorm, **kwargs}
    if weight_decay:
        config["weight_decay"] = weight_decay
    try:
        base = keras.optimizers.get(name).__class__
        built = base(**config)
    except (ValueError, TypeError) as error:
        raise TfptmError(f"optimizer: cannot make {name!r} with {sorted(config)}: {error}") from None
    return with_lr_multipliers(built, lr_multipliers or {}, no_decay=no_decay)
