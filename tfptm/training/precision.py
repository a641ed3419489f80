"""Mixed precision: a Keras dtype policy chosen for the hardware (floor 3)."""

import keras
import tensorflow as tf

from tfptm.errors import TfptmError

POLICIES = ("auto", "mixed_float16", "mixed_bfloat16", "float32", None)


def mixed_precision(policy="auto"):
    """Sets Keras's global dtype policy for models built afterwards; returns its name.

    `"auto"` picks `mixed_bfloat16` on a GPU that computes in bfloat16
    (compute capability 8.0 or later), `mixed_float16` on an older GPU, and
    leaves `float32` without a GPU, where mixed precision is slower. `None`
    or `"float32"` switch it off. Task heads compute their output in float32
    under any policy, and Keras adds loss scaling to the optimizer under
    `mixed_float16`.

    Example:
    >>> mixed_precision("auto")  # no GPU here
    'float32'
    """
    if policy not in POLICIES:
        raise TfptmError(f"mixed_precision: unknown policy {policy!r}; expected one of {', '.join(map(str, POLICIES))}")
    if policy == "auto":
        policy = _auto_policy()
    keras.mixed_precision.set_global_policy(policy or "float32")
    return keras.mixed_precision.global_policy().name


def _auto_policy():
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "float32"
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
    return "mixed_bfloat16" if tuple(capability) >= (8, 0) else "mixed_float16"
