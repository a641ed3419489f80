"""Magnitude pruning: the schedule, masks that only grow and hold exactly through training, and the same zeros
after saving, loading, continued training and TFLite export; Transformer kernels inside KerasHub layers."""

import keras
import keras_hub
import numpy as np
import pytest

import tfptm
from tfptm.compress.pruning import MagnitudePruning, prunable_kernels, prune_to, sparsity, weight_masks
from tfptm.errors import TfptmError


class Masks(keras.callbacks.Callback):
    """Records the zeros of every kernel after each step (it runs after MagnitudePruning in the list)."""

    def __init__(self):
        super().__init__()
        self.history = []

    def on_train_batch_end(self, batch, logs=None):
        self.history.append(weight_masks(self.model))


def test_prune_to_is_exact_and_never_unprunes():
    kernel = np.array([[0.5, -0.1, 0.3], [0.2, 0.0, -0.9]])
    np.testing.assert_array_equal(prune_to(kernel, 0.5), [[True, False, True], [False, False, True]])
    old = np.array([[False, True, True], [True, True, True]])  # 0.5 was pruned before
    np.testing.assert_array_equal(prune_to(kernel, 1 / 3, old), [[False, True, True], [True, False, True]])


def test_masks_grow_on_schedule_and_pruned_weights_stay_zero(trained_classifier, digit_batch):
    x, y = digit_batch
    model = trained_classifier
    model.compile(keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")  # Adam moves every weight
    pruning, masks = MagnitudePruning(0.75, begin_step=2, end_step=10, frequency=2), Masks()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[pruning, masks]).history
    shares = [1 - np.mean(np.concatenate([m.ravel() for m in step.values()])) for step in masks.history]
    assert shares[0] == 0 and shares[-1] == pytest.approx(0.75, abs=0.01)
    assert all(a <= b + 1e-9 for a, b in zip(shares, shares[1:]))  # the schedule only raises sparsity
    for before, after in zip(masks.history, masks.history[1:]):  # and a pruned weight is never revived
        for path in before:
            assert not (after[path] & ~before[path]).any(), path
    assert history["sparsity"] == [pytest.approx(0.75 * (1 - (1 - 6 / 8) ** 3), abs=1e-6), 0.75]
    report = sparsity(model)
    assert set(report["kernels"]) == set(prunable_kernels(model))
    assert all(share == pytest.approx(0.75, abs=0.01) for share in report["kernels"].values())
    with pytest.raises(TfptmError, match="target_sparsity is 1.0"):
        MagnitudePruning(1.0)


def test_masks_survive_save_load_more_training_and_tflite_export(trained_classifier, digit_batch, tmp_path):
    x, y = digit_batch
    model = trained_classifier
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[MagnitudePruning(0.5, frequency=1)])
    masks = weight_masks(model)
    tfptm.save_model(model, tmp_path / "pruned.keras")
    loaded = tfptm.load_model(tmp_path / "pruned.keras")
    for path, mask in weight_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[path], err_msg=path)

    # Training on from the loaded file keeps the same zeros (and prunes more if asked).
    loaded.compile(keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[MagnitudePruning(0.5, frequency=1)])
    for path, mask in weight_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[path], err_msg=path)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[MagnitudePruning(0.6, frequency=1)])
    assert sparsity(loaded)["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert all(not (new & ~masks[path]).any() for path, new in weight_masks(loaded).items())

    # The TFLite model holds the same zeros: each kernel, in LiteRT's layout, with its zero count.
    from ai_edge_litert.interpreter import Interpreter

    exported = tfptm.export.tflite(model, tmp_path / "pruned.tflite", quantization="float32")
    interpreter = Interpreter(model_path=str(exported.path))
    constants = []
    for detail in interpreter.get_tensor_details():
        try:
            constants.append(np.asarray(interpreter.get_tensor(detail["index"])))
        except ValueError:
            pass  # activations have no data before a run
    for path, variable in prunable_kernels(model).items():
        kernel = np.asarray(variable)
        # (BatchNorm folds into a convolution's kernel, scaling each output channel: zeros stay zeros)
        matches = [c for c in constants if c.size == kernel.size and (c == 0).sum() == (kernel == 0).sum()]
        assert matches, f"{path}: no TFLite tensor with its {(kernel == 0).sum()} zeros"
    np.testing.assert_allclose(tfptm.export.run_tflite(exported.path, x), model.predict(x, verbose=0), atol=1e-5)


def test_transformer_kernels_inside_keras_hub_layers_are_pruned():
    bert = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=16,
                                         intermediate_dim=32, max_sequence_length=8)
    model = tfptm.build_model(tfptm.backbones.presets.features_model(bert),
                              tfptm.Head("multiclass", num_classes=2, pooling="first"))
    kinds = {path.split("/")[-2] for path in prunable_kernels(model)}
    assert {"query", "key", "value", "attention_output", "feedforward_intermediate_dense",
            "feedforward_output_dense", "head_logits"} <= kinds
    assert not any("embedding" in path for path in prunable_kernels(model))
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, 30, (16, 8)), "segment_ids": np.zeros((16, 8), "int32"),
         "padding_mask": np.ones((16, 8), bool)}
    model.fit(x, np.arange(16) % 2, batch_size=4, epochs=1, verbose=0, callbacks=[MagnitudePruning(0.5, frequency=1)])
    assert all(share == pytest.approx(0.5, abs=0.02) for share in sparsity(model)["kernels"].values())


def tiny_bert_classifier(layers=3):
    bert = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=layers, num_heads=2, hidden_dim=16,
                                         intermediate_dim=32, max_sequence_length=8)
    return tfptm.build_model(tfptm.backbones.presets.features_model(bert), tfptm.Head("multiclass", num_classes=3,
                                                                                      pooling="first"))


def token_inputs(n=6):
    rng = np.random.default_rng(1)
    mask = np.arange(8)[None] < rng.integers(3, 9, (n, 1))
    return {"token_ids": np.where(mask, rng.integers(1, 30, (n, 8)), 0), "segment_ids": np.zeros((n, 8), "int32"),
            "padding_mask": mask}


def test_structured_pruning_removes_the_units_and_layers_that_carry_nothing(tmp_path):
    from tfptm.compress.structured import prune_transformer, transformer_layers

    model, x = tiny_bert_classifier(), token_inputs()
    backbone = model.get_layer("backbone")
    # Units whose output weights are 0 add nothing: pruning exactly those (the least important) changes nothing.
    silent = {}
    for i in range(3):
        block = backbone.get_layer(f"transformer_layer_{i}")
        out = block._feedforward_output_dense.kernel
        units = np.random.default_rng(i).choice(32, 16, replace=False)
        value = np.asarray(out).copy()
        value[units] = 0
        out.assign(value)
        silent[i] = units
    expected = model.predict(x, verbose=0)
    smaller = prune_transformer(model, feedforward=0.5)
    assert [c["intermediate_dim"] for c in transformer_layers(smaller).values()] == [16, 16, 16]
    np.testing.assert_allclose(smaller.predict(x, verbose=0), expected, atol=1e-5)
    assert smaller.count_params() < model.count_params()
    assert np.asarray(model.get_layer("backbone").get_layer("transformer_layer_0")._feedforward_output_dense.kernel
                      ).shape == (32, 16)  # the original is unchanged

    # A layer whose attention and feed-forward outputs are 0 only re-normalizes: dropping it changes ~nothing.
    middle = backbone.get_layer("transformer_layer_1")
    for dense in (middle._self_attention_layer._output_dense, middle._feedforward_output_dense):
        for variable in dense.weights:
            variable.assign(np.zeros(variable.shape, "float32"))
    expected = model.predict(x, verbose=0)
    shallow = prune_transformer(model, drop_layers=[1])
    assert list(transformer_layers(shallow)) == ["transformer_layer_0", "transformer_layer_2"]
    np.testing.assert_allclose(shallow.predict(x, verbose=0), expected, atol=1e-3)

    # The result is a plain model: it saves, loads and exports like any other.
    tfptm.save_model(shallow, tmp_path / "shallow.keras")
    loaded = tfptm.load_model(tmp_path / "shallow.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), shallow.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(TfptmError, match="drop_layers is \\[0, 1, 2\\]"):
        prune_transformer(model, drop_layers=[0, 1, 2])
    with pytest.raises(TfptmError, match="no KerasHub TransformerEncoder layers"):
        prune_transformer(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), feedforward=0.5)
