"""Fine-tuning recipes, each checked by its defining property: gradual unfreezing
(which blocks changed after each stage), discriminative rates (the step each
variable took), AdamW decay exclusions, warmup schedules, clipping, label
smoothing, LoRA (what trains, export parity) and mixed precision."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.errors import TfptmError
from tfptm.training import optimizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(digit_batch, batch_size=16):
    x, y = digit_batch
    return tfptm.data.from_arrays(x, y, batch_size=batch_size, seed=0)


def _snapshot(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def _changed(before, model):
    return {v.path for v in model.weights if not np.array_equal(before[v.path], v.numpy())}


# --- gradual unfreezing ---------------------------------------------------------------


def test_gradual_unfreezing_trains_one_more_block_per_stage(tiny_classifier, digit_batch):
    snapshots = []

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            snapshots.append(_snapshot(self.model))

        def on_train_end(self, logs=None):
            snapshots[-1] = _changed(snapshots[-1], self.model)

    stages = tfptm.training.gradual_unfreezing(2, epochs_per_block=1, learning_rate=1e-2)
    history = tfptm.finetune(tiny_classifier, _data(digit_batch), stages, callbacks=[Snapshot()], verbose=0)
    assert history["stage"] == ["head", "unfreeze_top1", "unfreeze_top2"]
    head = {"head_logits/kernel", "head_logits/bias"}
    convs = {"block1": {"block1_1_conv/kernel", "block1_2_conv/kernel"}, "block2": {"block2_1_conv/kernel", "block2_2_conv/kernel"}}
    # BatchNormalization stays frozen (weights and statistics) in every stage.
    assert snapshots == [head, head | convs["block2"], head | convs["block2"] | convs["block1"]]


def test_gradual_unfreezing_rejects_no_blocks():
    with pytest.raises(TfptmError, match="num_blocks is 0"):
        tfptm.training.gradual_unfreezing(0)


# --- discriminative / layer-wise learning rates ------------------------------------------


def test_layerwise_decay_multipliers_follow_depth(tiny_classifier):
    multipliers = tfptm.training.layerwise_lr_decay(tiny_classifier, 0.5)
    assert multipliers["block2_2_conv/kernel"] == 0.5
    assert multipliers["block1_1_bn/gamma"] == 0.25
    assert "head_logits/kernel" not in multipliers  # the head keeps 1.0


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_each_variable_steps_at_its_own_rate_after_recompile(tiny_classifier, name):
    """SGD steps by rate * gradient; Adam's first step by rate * sign(gradient), whatever the
    gradient's size, so both show the rate itself was scaled (scaled gradients would not move Adam)."""
    multipliers = tfptm.training.layerwise_lr_decay(tiny_classifier, 0.5)
    opt = tfptm.training.optimizer(name, learning_rate=0.1, weight_decay=None, lr_multipliers=multipliers)
    tfptm.training.recompile(tiny_classifier, 0.01, optimizer=opt)  # the config goes through serialization
    variables = tiny_classifier.trainable_variables
    before = [v.numpy().copy() for v in variables]
    gradients = [tf.fill(v.shape, 3.0) for v in variables]
    tiny_classifier.optimizer.apply(gradients, variables)
    for variable, old in zip(variables, before):
        expected = {"block2": 0.5, "block1": 0.25}.get(variable.path.split("_")[0], 1.0)
        step = (old - variable.numpy()) / (3.0 if name == "sgd" else 1.0)
        np.testing.assert_allclose(step, 0.01 * expected, rtol=1e-3, err_msg=variable.path)


def test_multipliers_match_the_longest_key_and_survive_keras_files(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="top")(keras.layers.Dense(4, name="low")(inputs)))
    sgd = tfptm.training.with_lr_multipliers(keras.optimizers.SGD(1.0), {"low": 0.5, "low/bias": 0.0})
    model.compile(optimizer=sgd, loss="mse")
    model.fit(np.ones((2, 3)), np.ones((2, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer).__name__ == "ScaledSGD"
    assert loaded.optimizer.get_config()["lr_multipliers"] == {"low": 0.5, "low/bias": 0.0}
    before = [v.numpy().copy() for v in loaded.trainable_variables]
    loaded.optimizer.apply([tf.ones_like(v) for v in loaded.trainable_variables], loaded.trainable_variables)
    steps = {v.path: float(np.mean(b - v.numpy())) for v, b in zip(loaded.trainable_variables, before)}
    assert steps == pytest.approx({"low/kernel": 0.5, "low/bias": 0.0, "top/kernel": 1.0, "top/bias": 1.0})


DISTRIBUTED = """
import json, sys
import numpy as np, keras, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tfptm
strategy = tfptm.training.get_strategy("mirrored")
with strategy.scope():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="top")(keras.layers.Dense(3, name="low")(inputs)))
    model.compile(optimizer=tfptm.training.optimizer("sgd", 1.0, weight_decay=None, lr_multipliers={"low": 0.25}), loss="mse")
tfptm.training.recompile(model, 0.1)  # outside the scope, as finetune does
x = np.random.default_rng(0).random((8, 4)).astype("float32"); y = x.sum(axis=1, keepdims=True)
with tf.GradientTape() as tape:
    loss = keras.losses.mean_squared_error(y, model(x))
    loss = tf.reduce_mean(loss)
gradients = {v.path: g.numpy() for v, g in zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables))}
before = {v.path: v.numpy().copy() for v in model.trainable_variables}
model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
ratios = {p: float(np.median((before[p] - v.numpy()) / gradients[p])) for p, v in ((v.path, v) for v in model.trainable_variables)}
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "ratios": ratios}))
"""


def test_multipliers_apply_under_mirrored_strategy():
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", DISTRIBUTED], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["ratios"] == pytest.approx({"low/kernel": 0.025, "low/bias": 0.025, "top/kernel": 0.1, "top/bias": 0.1}, rel=1e-3)


# --- AdamW, schedules, clipping ------------------------------------------------------------


def _norm_model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(x))
    model.compile(optimizer="adam", loss="mse")
    return model


def test_adamw_decays_kernels_but_not_biases_or_norms_after_recompile():
    model = _norm_model()
    opt = tfptm.training.optimizer("adamw", learning_rate=0.1, weight_decay=0.5)
    tfptm.training.recompile(model, 0.1, optimizer=opt)
    tfptm.training.recompile(model, 0.2)  # a second stage: exclusions must survive serialization
    variables = model.trainable_variables
    before = {v.path: v.numpy().copy() for v in variables}
    model.optimizer.apply([tf.zeros_like(v) for v in variables], variables)  # only decay moves weights
    for v in variables:
        factor = 1.0 if v.name in ("bias", "gamma", "beta") else 1 - 0.2 * 0.5
        np.testing.assert_allclose(v.numpy(), before[v.path] * factor, rtol=1e-6, err_msg=v.path)


@pytest.mark.parametrize("decay, middle", [("linear", 0.5), ("cosine", 0.5), (None, 1.0)])
def test_warmup_then_decay_schedule_values(decay, middle):
    schedule = tfptm.training.WarmupDecay(2.0, total_steps=110, warmup_steps=10, decay=decay)
    values = [float(schedule(step)) for step in (0, 5, 10, 60, 110, 500)]
    end = 2.0 if decay is None else 0.0
    assert values == pytest.approx([0.0, 1.0, 2.0, 2.0 * middle, end, end], abs=1e-6)
    copy = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(copy(60)) == pytest.approx(values[3])


def test_warmup_fraction_and_bad_schedules():
    opt = tfptm.training.optimizer("adamw", 1e-3, warmup_fraction=0.25, decay="cosine", total_steps=40)
    assert opt.get_config()["learning_rate"]["config"]["warmup_steps"] == 10
    with pytest.raises(TfptmError, match="total_steps is needed"):
        tfptm.training.WarmupDecay(1e-3, decay="linear")
    with pytest.raises(TfptmError, match="decay is 'step'"):
        tfptm.training.WarmupDecay(1e-3, total_steps=5, decay="step")


def test_each_finetune_stage_sets_the_schedule_peak(tiny_classifier, digit_batch):
    peaks = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            peaks.append(self.model.optimizer.get_config()["learning_rate"]["config"]["peak_learning_rate"])

    opt = tfptm.training.optimizer("adamw", 1.0, warmup_steps=2, decay="linear", total_steps=8)
    tfptm.training.recompile(tiny_classifier, optimizer=opt)
    stages = tfptm.training.two_stage(1, 1, head_learning_rate=1e-2, finetune_learning_rate=1e-4)
    tfptm.finetune(tiny_classifier, _data(digit_batch), stages, callbacks=[Record()], verbose=0)
    assert peaks == pytest.approx([1e-2, 1e-4])


def test_global_clipnorm_bounds_the_step():
    model = _norm_model()
    tfptm.training.recompile(model, optimizer=tfptm.training.optimizer("sgd", 1.0, weight_decay=None, global_clipnorm=1e-3))
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    model.optimizer.apply([tf.fill(v.shape, 100.0) for v in variables], variables)
    step = np.sqrt(sum(np.sum((b - v.numpy()) ** 2) for b, v in zip(before, variables)))
    assert step == pytest.approx(1e-3, rel=1e-4)


def test_label_smoothing_raises_the_loss_of_confident_predictions():
    labels, probabilities = np.array([0, 1]), np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]], "float32")
    plain = float(tfptm.Head("multiclass", num_classes=3).loss()(labels, probabilities))
    smooth_head = tfptm.Head("multiclass", num_classes=3, label_smoothing=0.2)
    smooth = float(smooth_head.loss()(labels, probabilities))
    one_hot = keras.ops.one_hot(labels, 3)
    assert smooth == pytest.approx(float(keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(one_hot, probabilities)))
    assert smooth > plain
    binary = tfptm.Head("binary", label_smoothing=0.2).loss()
    assert binary.get_config()["label_smoothing"] == 0.2
    with pytest.raises(TfptmError, match="label_smoothing is 0.1 for task 'regression'"):
        tfptm.Head("regression", label_smoothing=0.1)


def test_label_smoothing_model_round_trips(tmp_path, digit_batch):
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3, label_smoothing=0.1))
    model.fit(*digit_batch, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").loss.label_smoothing == 0.1


# --- LoRA ------------------------------------------------------------------------------------


def _text_model():
    backbone = tfptm.backbones.get(
        "transformer_encoder", vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=8, dropout=0.0,
    )  # fmt: skip
    return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"), learning_rate=1e-2)


def _text_inputs(n=8):
    ids = np.random.default_rng(0).integers(1, 40, (n, 8))
    return {"token_ids": ids, "padding_mask": np.ones_like(ids, bool), "segment_ids": np.zeros_like(ids)}, np.arange(n) % 2


def test_lora_trains_only_adapters_and_head_and_round_trips(tmp_path):
    model = _text_model()
    adapted = tfptm.training.enable_lora(model, rank=2)
    assert sorted(layer.path for layer in adapted) == [
        f"transformer_layer_{i}/self_attention_layer/{n}" for i in (0, 1) for n in ("query", "value")
    ]
    assert tfptm.training.lora_rank(model) == 2
    x, y = _text_inputs()
    before = _snapshot(model)
    history = tfptm.finetune(model, tfptm.data.from_arrays(x, y, batch_size=4, seed=0), tfptm.training.full(1, 1e-2), verbose=0)
    assert len(history["loss"]) == 1
    changed = _changed(before, model)
    lora = {f"{layer.path}/lora_kernel_{ab}" for layer in adapted for ab in "ab"}
    assert changed == lora | {"head_logits/kernel", "head_logits/bias"}  # base kernels, biases, norms, embeddings frozen
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "lora.keras")
    loaded = keras.saving.load_model(tmp_path / "lora.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-5)
    serve = tf.saved_model.load(str(tfptm.export.saved_model(model, tmp_path, "lora"))).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    served = serve(**{name: tf.constant(value, dtype=specs[name].dtype) for name, value in x.items()})
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)


def test_lora_with_partial_trains_only_the_top_blocks_adapters():
    model = _text_model()
    tfptm.training.enable_lora(model, rank=2)
    tfptm.training.set_trainable_blocks(tfptm.backbone_of(model), 1)
    tfptm.training.recompile(model)
    assert {v.path for v in model.trainable_variables} == {
        "transformer_layer_1/self_attention_layer/query/lora_kernel_a",
        "transformer_layer_1/self_attention_layer/query/lora_kernel_b",
        "transformer_layer_1/self_attention_layer/value/lora_kernel_a",
        "transformer_layer_1/self_attention_layer/value/lora_kernel_b",
        "head_logits/kernel",
        "head_logits/bias",
    }


def _dense_model():
    inputs = keras.Input((6,), name="features")
    x = keras.layers.Dense(8, activation="relu", name="block1_dense")(inputs)
    backbone = keras.Model(inputs, keras.layers.Dense(8, activation="relu", name="block2_dense")(x))
    return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))


def test_lora_model_exports_with_the_same_outputs(tmp_path):
    """`tfptm.export.saved_model` takes one input, so this uses a single-input backbone of Dense layers."""
    model = _dense_model()
    tfptm.training.enable_lora(model, rank=2)
    tfptm.training.recompile(model, 1e-2)
    x, y = np.random.default_rng(0).random((16, 6)).astype("float32"), np.arange(16) % 3
    before = _snapshot(model)
    model.fit(x, y, epochs=2, verbose=0)
    assert _changed(before, model) >= {"block1_dense/lora_kernel_b", "block2_dense/lora_kernel_b"}
    assert "block1_dense/kernel" not in _changed(before, model)
    path = tfptm.export.saved_model(model, tmp_path, "lora")
    served = tf.saved_model.load(str(path)).signatures["serving_default"](features=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"].numpy(), model.predict(x, verbose=0), atol=1e-5)


def test_lora_on_pretrained_minilm(minilm_dir):
    backbone = tfptm.backbones.get(minilm_dir)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))
    adapted = tfptm.training.enable_lora(model, rank=4)
    assert len(adapted) == 12  # query and value in each of the 6 layers
    tfptm.training.recompile(model, 1e-3)
    names = sorted(v.path.rsplit("/", 2)[-2] + "/" + v.name for v in model.trainable_variables)
    assert names == ["head_logits/bias", "head_logits/kernel"] + sorted(
        f"{n}/lora_kernel_{ab}" for n in ("query", "value") for ab in "ab" for _ in range(6)
    )
    ids = np.array([[101, 7592, 2088, 102], [101, 2088, 102, 0]])
    x = {"token_ids": ids, "padding_mask": ids > 0, "segment_ids": 0 * ids}
    before = _snapshot(model)
    model.fit(x, np.array([0, 1]), epochs=1, verbose=0)
    changed = _changed(before, model)
    assert "transformer_layer_5/self_attention_layer/query/kernel" not in changed
    assert "transformer_layer_5/self_attention_layer/query/lora_kernel_b" in changed
    assert all("lora_kernel" in path or path.startswith("head_") for path in changed)


def test_lora_errors():
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    with pytest.raises(TfptmError, match="no Dense or EinsumDense layer"):
        tfptm.training.enable_lora(backbone, rank=2)
    model = _text_model()
    tfptm.training.enable_lora(model, rank=2)
    with pytest.raises(TfptmError, match="already has LoRA of rank 2"):
        tfptm.training.enable_lora(model, rank=4)


def test_lora_on_keras_hub_layers_saves_merged_kernels(tmp_path):
    """KerasHub attention builds its projections itself, so a reload has merged kernels and no adapters."""
    model = _text_model()
    tfptm.training.enable_lora(model, rank=2)
    model.save(tmp_path / "lora.keras")
    loaded = keras.saving.load_model(tmp_path / "lora.keras")
    assert tfptm.training.lora_rank(loaded) is None
    assert len(tfptm.training.enable_lora(loaded, rank=2)) == 4  # fresh adapters on the merged kernels


def test_lora_again_on_a_loaded_model_refreezes_it(tmp_path):
    model = _dense_model()
    tfptm.training.enable_lora(model, rank=2)
    model.save(tmp_path / "lora.keras")
    loaded = keras.saving.load_model(tmp_path / "lora.keras")
    assert tfptm.training.lora_rank(loaded) == 2
    assert len(loaded.trainable_variables) > 6  # Keras loads every weight trainable again
    assert len(tfptm.training.enable_lora(loaded, rank=2)) == 2
    assert {v.path for v in loaded.trainable_variables} == {
        f"block{i}_dense/lora_kernel_{ab}" for i in (1, 2) for ab in "ab"
    } | {"head_logits/kernel", "head_logits/bias"}


# --- mixed precision ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_the_head_output_float32(policy, digit_batch):
    try:
        assert tfptm.training.mixed_precision(policy) == policy
        backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
        model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
        assert backbone.get_layer("block1_1_conv").compute_dtype == policy.split("_")[1]
        assert model.output.dtype == "float32"
        history = tfptm.finetune(model, _data(digit_batch), tfptm.training.two_stage(1, 1), verbose=0)
        assert np.isfinite(history["loss"]).all()
        if policy == "mixed_float16":  # Keras scales the loss; recompiling must not wrap the scaler twice
            assert type(model.optimizer.inner_optimizer).__name__ == "Adam"
        assert model.predict(digit_batch[0][:2], verbose=0).dtype == np.float32
    finally:
        tfptm.training.mixed_precision(None)
    assert tfptm.training.mixed_precision("auto") == ("float32" if not tf.config.list_physical_devices("GPU") else
                                                      keras.mixed_precision.global_policy().name)  # fmt: skip
    tfptm.training.mixed_precision(None)
