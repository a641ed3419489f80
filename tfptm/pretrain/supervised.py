"""Supervised pre-training: train a backbone on a labelled source task, keep the backbone."""

from tfptm.build import backbone_of, build_model
from tfptm.pretrain.common import Pretrained, final_metrics, train_all_weights


def supervised(backbone, head, train_data, epochs, learning_rate=1e-3, validation_data=None, verbose=0, name="source",
               callbacks=None, optimizer=None):
    """Trains `backbone` with `head` on a labelled source data set, every weight training; returns a `Pretrained`.

    This is the first half of classic transfer learning (the quickstart
    pre-trains on digits 0-4 this way): the result's `backbone` then goes
    into `tfptm.build_model` with the target task's head, and its `model`
    is the source-task classifier.

    Args:
        backbone: any backbone, e.g. from `tfptm.backbones.get`.
        head: the source task's `tfptm.Head`.
        train_data: a `tf.data.Dataset` of `(inputs, labels)` batches, e.g. from `tfptm.data.from_arrays`.
        epochs, learning_rate: of the one full-training stage.
        validation_data: optional, reported as `validation_*` metrics.
        callbacks: Keras callbacks for the run; with `tfptm.training.BackupAndRestore`
            a killed run called again resumes from its last backup.
        optimizer: a Keras optimizer to train with (its rate is set to
            `learning_rate`); default Adam.

    Example:
    >>> import numpy as np, tfptm
    >>> images, labels = tfptm.datasets.load_digits()
    >>> x, y = tfptm.data.select_classes(images, labels, [0, 1, 2, 3, 4])
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,), input_scale=1 / 16)
    >>> result = supervised(backbone, tfptm.Head("multiclass", num_classes=5), tfptm.data.from_arrays(x, y, seed=0), epochs=2)
    >>> result.backbone is backbone, len(result.history["loss"]), sorted(result.metrics)
    (True, 2, ['train_accuracy', 'train_loss'])
    """
    model = build_model(backbone, head, learning_rate=learning_rate, name=name)
    if optimizer is not None:
        from tfptm.training.finetune import recompile

        recompile(model, optimizer=optimizer)
    history = train_all_weights(model, train_data, epochs, learning_rate, None, validation_data, verbose, callbacks)
    return Pretrained("supervised", backbone_of(model), None, model, history, final_metrics(history))
