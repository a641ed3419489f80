"""Pre-training backbones (floor 3): masked LM, causal LM, next-sentence (+ masked LM), supervised; saved as artifacts that fine-tuning loads.

Pre-train, save, then fine-tune from the saved directory:

>>> import os, tempfile, tensorflow as tf, tfptm
>>> corpus = ["the film was great fun", "the plot was dull and slow", "great acting and a fine plot"] * 10
>>> result = tfptm.pretrain.masked_lm(corpus, vocabulary_size=60, sequence_length=8, epochs=1,
...                                  num_layers=1, hidden_dim=16, intermediate_dim=32)
>>> path = tfptm.pretrain.save_pretrained(os.path.join(tempfile.mkdtemp(), "mlm"), result)
>>> backbone, tokenizer = tfptm.backbones.saved.load_artifact(path)
>>> model = tfptm.build_model(backbone, tfptm.Head("binary"))
>>> tfptm.data.text.with_tokenizer(model, tokenizer).predict(tf.constant(["a great film"]), verbose=0).shape
(1, 1)
"""

from tfptm.pretrain.causal import causal_lm, causal_lm_model, next_token_batches, perplexity
from tfptm.pretrain.common import Pretrained, save_pretrained
from tfptm.pretrain.mlm import mask_generator, masked_batches, masked_lm, masked_lm_model
from tfptm.pretrain.nsp import continue_pretraining, next_sentence, next_sentence_model, sentence_pairs
from tfptm.pretrain.supervised import supervised

__all__ = [
    "Pretrained",
    "causal_lm",
    "causal_lm_model",
    "continue_pretraining",
    "mask_generator",
    "masked_batches",
    "masked_lm",
    "masked_lm_model",
    "next_sentence",
    "next_sentence_model",
    "next_token_batches",
    "perplexity",
    "save_pretrained",
    "sentence_pairs",
    "supervised",
]
