import keras
import numpy as np
import pytest

import tfptm
from tfptm.errors import TfptmError


def _weights(layer):
    return [w.numpy().copy() for w in layer.weights]


def _changed(before, layer):
    return any(not np.allclose(a, b.numpy()) for a, b in zip(before, layer.weights))


def _data(digit_batch):
    x, y = digit_batch
    return tfptm.data.from_arrays(x, y, batch_size=16, seed=0)


def test_feature_extraction_trains_only_the_head_and_keeps_batchnorm_statistics(tiny_classifier, digit_batch):
    backbone = tfptm.backbone_of(tiny_classifier)
    bn = backbone.get_layer("block1_1_bn")
    before_backbone, before_head = _weights(backbone), _weights(tiny_classifier.get_layer("head_logits"))
    tfptm.finetune(tiny_classifier, _data(digit_batch), tfptm.training.feature_extraction(2), verbose=0)
    assert not _changed(before_backbone, backbone)  # includes BN moving mean and variance
    assert _changed(before_head, tiny_classifier.get_layer("head_logits"))
    assert not bn.trainable


def test_two_stage_finetunes_convolutions_but_not_batchnorm(tiny_classifier, digit_batch):
    backbone = tfptm.backbone_of(tiny_classifier)
    conv, bn = backbone.get_layer("block1_1_conv"), backbone.get_layer("block1_1_bn")
    before_conv, before_bn = _weights(conv), _weights(bn)
    history = tfptm.finetune(tiny_classifier, _data(digit_batch), tfptm.training.two_stage(1, 2), verbose=0)
    assert history["stage"] == ["feature_extraction", "finetune", "finetune"]
    assert len(history["loss"]) == 3
    assert _changed(before_conv, conv)
    assert not _changed(before_bn, bn)


def test_full_training_from_scratch_updates_batchnorm(tiny_classifier, digit_batch):
    bn = tfptm.backbone_of(tiny_classifier).get_layer("block2_1_bn")
    before = _weights(bn)
    tfptm.finetune(tiny_classifier, _data(digit_batch), tfptm.training.full(1, 1e-3), verbose=0)
    assert _changed(before, bn)


def test_partial_unfreezes_only_the_top_blocks(tiny_classifier, digit_batch):
    backbone = tfptm.backbone_of(tiny_classifier)
    low, top = backbone.get_layer("block1_1_conv"), backbone.get_layer("block2_1_conv")
    before_low, before_top = _weights(low), _weights(top)
    tfptm.finetune(tiny_classifier, _data(digit_batch), tfptm.training.partial(1, top_blocks=1), verbose=0)
    assert not _changed(before_low, low)
    assert _changed(before_top, top)


def test_each_stage_uses_its_own_learning_rate(tiny_classifier, digit_batch):
    rates = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            rates.append(float(self.model.optimizer.learning_rate))

    stages = tfptm.training.two_stage(1, 1, head_learning_rate=1e-2, finetune_learning_rate=1e-5)
    tfptm.finetune(tiny_classifier, _data(digit_batch), stages, callbacks=[Record()], verbose=0)
    assert rates == pytest.approx([1e-2, 1e-5])


def test_asking_for_more_blocks_than_exist_is_an_error(tiny_classifier, digit_batch):
    with pytest.raises(TfptmError, match="trainable_blocks is 5 but backbone 'backbone' has 3 blocks: stem, block1, block2"):
        tfptm.finetune(tiny_classifier, _data(digit_batch), tfptm.training.partial(1, top_blocks=5), verbose=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0, "learning_rate": 1e-3}, "epochs is 0"),
        ({"epochs": 1, "learning_rate": -1.0}, "learning_rate is -1.0"),
        ({"epochs": 1, "learning_rate": 1e-3, "trainable_blocks": "top"}, "trainable_blocks is 'top'"),
    ],
)
def test_bad_stages_are_rejected(kwargs, message):
    with pytest.raises(TfptmError, match=message):
        tfptm.training.Stage("s", **kwargs)
