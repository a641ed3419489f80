"""Compression: distillation on `keras.distillation`, quantization-aware training and pruning (floor 3).

| module | holds |
|---|---|
| `distiller` | `Distiller` (Keras's, with tfptm's additions) |
| `distillation_losses` | `HeadDistillation`, `EmbeddingDistillation`, `Hint`, `per_token` |
| `teacher_outputs` | `teacher_outputs`, `cache_teacher_outputs` |
| `views` | a model's outputs, logits and named layers, as one model |
| `pruning` | magnitude pruning on a schedule (`MagnitudePruning`) |
| `structured` | structured pruning of Transformers (`prune_transformer`) |
| `qat` | quantization-aware training (`quantization_aware`), exported to int8 with its learned ranges |

`tfptm.distill`, the old module, forwards here for one release.
"""

from tfptm.compress.distillation_losses import EmbeddingDistillation, HeadDistillation, Hint, head_kind, per_token
from tfptm.compress.distiller import MISSING_LABEL, TARGET_KEYS, Distiller
from tfptm.compress.pruning import MagnitudePruning, sparsity
from tfptm.compress.structured import prune_transformer
from tfptm.compress.qat import QuantizationAware, is_quantization_aware, quantization_aware
from tfptm.compress.teacher_outputs import cache_teacher_outputs, teacher_outputs
from tfptm.compress.views import LOGITS_LAYER

__all__ = ["Distiller", "HeadDistillation", "EmbeddingDistillation", "Hint", "head_kind", "per_token",
           "cache_teacher_outputs", "quantization_aware", "MagnitudePruning", "sparsity", "prune_transformer", "is_quantization_aware", "QuantizationAware", "teacher_outputs", "MISSING_LABEL", "TARGET_KEYS", "LOGITS_LAYER"]
