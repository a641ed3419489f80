"""Magnitude pruning during fine-tuning, as a Keras callback on a plain model (floor 3).

`MagnitudePruning(target_sparsity)` zeroes the smallest-magnitude weights of
every kernel (Dense, EinsumDense and convolution kernels, inside nested models
and KerasHub Transformer layers too; not embeddings, biases or norms), each
tensor to the same sparsity, raised on the polynomial schedule of Zhu & Gupta
(2017) that TensorFlow Model Optimization uses:

    s(t) = target + (initial - target) * (1 - (t - begin) / (end - begin))^3,  every `frequency` steps

The masks only grow (a pruned weight stays pruned) and are applied after every
optimizer step, so between steps every pruned weight is exactly 0. That is the
whole of the pruning state: a saved `.keras` file, a SavedModel and a TFLite
model hold the same zeros, and `weight_masks(model)` reads the masks back from
them (a later `MagnitudePruning` starts from those zeros). The model stays a
plain `keras.Model`: no wrapper layers to strip before export.

Example:
>>> import numpy as np, tfptm
>>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
>>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
>>> x, y = np.random.rand(32, 8, 8, 1).astype("float32"), np.arange(32) % 3
>>> _ = model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[MagnitudePruning(0.5, frequency=2)])
>>> round(sparsity(model)["sparsity"], 2)
0.5
"""

import keras
import numpy as np

from tfptm.errors import TfptmError

KERNEL_LAYERS = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv1D, keras.layers.Conv2D,
                 keras.layers.Conv3D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)


def prunable_kernels(model):
    """The kernels magnitude pruning applies to: `{variable path: variable}` of every Dense, EinsumDense and
    convolution layer's kernel (depthwise and pointwise kernels included), at any depth, trainable or not."""
    kernels = {}
    for layer in all_layers(model):
        if isinstance(layer, KERNEL_LAYERS):
            # Dense and EinsumDense keep the variable in `_kernel` (their `kernel` adds a LoRA update when enabled)
            for name in ("_kernel", "kernel", "depthwise_kernel", "pointwise_kernel"):
                variable = getattr(layer, name, None)
                if isinstance(variable, keras.Variable) and len(variable.shape) >= 2:
                    kernels[variable.path] = variable
    return kernels


def all_layers(model):
    """`model` and every layer inside it, at any depth, each once."""
    seen, stack, order = set(), [model], []
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        order.append(layer)
        stack.extend(reversed(list(layer._flatten_layers(include_self=False, recursive=False))))
    return order


def weight_masks(model):
    """`{kernel path: boolean mask}` (True = kept) read from the zeros of a pruned model's kernels."""
    return {path: np.asarray(variable) != 0 for path, variable in prunable_kernels(model).items()}


def sparsity(model):
    """`{"sparsity": share of pruned kernel weights, "kernels": {path: share}}` over `prunable_kernels(model)`.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer="zeros")])
    >>> sparsity(model)["sparsity"]
    1.0
    """
    masks = weight_masks(model)
    total = sum(mask.size for mask in masks.values())
    pruned = sum(int((~mask).sum()) for mask in masks.values())
    return {"sparsity": pruned / total if total else 0.0,
            "kernels": {path: float((~mask).mean()) for path, mask in masks.items()}}


def scheduled_sparsity(step, target, initial=0.0, begin=0, end=1):
    """The polynomial (cubic) schedule: `initial` at `begin`, `target` from `end` on.

    Example:
    >>> [round(scheduled_sparsity(t, 0.8, begin=0, end=10), 3) for t in (0, 5, 10, 20)]
    [0.0, 0.7, 0.8, 0.8]
    """
    if step <= begin:
        return initial
    progress = min(1.0, (step - begin) / max(end - begin, 1))
    return target + (initial - target) * (1.0 - progress) ** 3


def prune_to(kernel, sparsity_wanted, mask=None):
    """The mask (True = kept) that zeroes the `sparsity_wanted` share of `kernel`'s entries of smallest magnitude,
    never unpruning what `mask` pruned; ties at the threshold are broken by position, so the count is exact."""
    values = np.abs(np.asarray(kernel, dtype="float32")).ravel()
    if mask is not None:
        values = np.where(np.asarray(mask).ravel(), values, -1.0)  # already pruned: pruned first
    count = int(round(sparsity_wanted * values.size))
    keep = np.ones(values.size, dtype=bool)
    if count:
        keep[np.argsort(values, kind="stable")[:count]] = False
    if mask is not None:
        keep &= np.asarray(mask).ravel()
    return keep.reshape(np.shape(kernel))


class MagnitudePruning(keras.callbacks.Callback):
    """Prunes every kernel of the model being fitted to `target_sparsity` on a schedule (see the module).

    Args:
        target_sparsity: the share of each kernel's weights set to 0, in [0, 1).
        begin_step: the step pruning starts (0: the first).
        end_step: the step the target is reached; default: the last step of
            this `fit` (`epochs * steps_per_epoch`); set it earlier to leave
            steps in which the sparse model recovers.
        frequency: steps between raises of the sparsity.
        initial_sparsity: the sparsity at `begin_step`.

    Weights already 0 when training starts (a pruned model saved and loaded)
    stay pruned. `fit` logs `sparsity` every epoch.
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=None, frequency=100, initial_sparsity=0.0):
        super().__init__()
        for name, value in (("target_sparsity", target_sparsity), ("initial_sparsity", initial_sparsity)):
            if not 0.0 <= value < 1.0:
                raise TfptmError(f"MagnitudePruning: {name} is {value}; expected 0 <= {name} < 1")
        if not (isinstance(frequency, int) and frequency >= 1):
            raise TfptmError(f"MagnitudePruning: frequency is {frequency!r}; expected an integer >= 1")
        if end_step is not None and end_step < begin_step:
            raise TfptmError(f"MagnitudePruning: end_step {end_step} is before begin_step {begin_step}")
        self.target, self.initial = float(target_sparsity), float(initial_sparsity)
        self.begin, self.end, self.frequency = int(begin_step), end_step, frequency
        self.step, self.masks, self.kernels, self.current = 0, {}, {}, 0.0

    def on_train_begin(self, logs=None):
        self.kernels = prunable_kernels(self.model)
        if not self.kernels:
            raise TfptmError(f"MagnitudePruning: model {self.model.name!r} has no Dense, EinsumDense or convolution "
                             "kernels to prune")
        self.masks = {path: np.asarray(v) != 0 for path, v in self.kernels.items()}
        if self.end is None:
            steps = (self.params or {}).get("steps") or 1
            self.end = max(self.begin + 1, self.begin + steps * (self.params or {}).get("epochs", 1) - 1)
        self._update(self.step)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step >= self.begin and (self.step - self.begin) % self.frequency == 0 or self.step == self.end:
            self._update(self.step)
        self._apply()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["sparsity"] = self.current

    def _update(self, step):
        if step < self.begin:
            return
        wanted = scheduled_sparsity(step, self.target, self.initial, self.begin, self.end)
        for path, variable in self.kernels.items():
            self.masks[path] = prune_to(variable, wanted, self.masks[path])
        self.current = wanted
        self._apply()

    def _apply(self):
        for path, variable in self.kernels.items():
            mask = self.masks[path]
            if not mask.all():
                variable.assign(variable * keras.ops.convert_to_tensor(mask, dtype=variable.dtype))
