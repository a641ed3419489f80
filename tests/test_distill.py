"""The Distiller: its loss against a hand computation, plain training at alpha=1, a frozen
teacher, cached teacher outputs, hints, callbacks, export and MirroredStrategy."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfptm
from tfptm.compress import Distiller, HeadDistillation, Hint, cache_teacher_outputs, teacher_outputs
from tfptm.errors import TfptmError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cnn(filters, classes=3):
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=filters, input_scale=1 / 16)
    return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=classes), learning_rate=1e-2)


def linear(bias=None, name="linear", extra_layer=None):
    """x (4 features) -> [extra_layer] -> Dense `head_logits` -> softmax: logits computable in NumPy."""
    inputs = keras.Input((4,), name="x")
    x = extra_layer(inputs) if extra_layer else inputs
    logits = keras.layers.Dense(3, name="head_logits")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="probabilities")(logits), name=name)
    if bias is not None:
        kernel, _ = model.get_layer("head_logits").get_weights()
        model.get_layer("head_logits").set_weights([kernel, np.asarray(bias, "float32")])
    return model


def np_logits(model, x):
    kernel, bias = model.get_layer("head_logits").get_weights()
    return x @ kernel + bias


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def weights(model):
    return [np.array(w) for w in model.get_weights()]


@pytest.fixture
def data3(digit_batch):
    return digit_batch  # 64 digits of classes 0-2


def test_the_loss_matches_a_hand_computation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 4)).astype("float32")
    y = np.array([0, 1, 2, -1, 1, 0, -1, 2, 2, 1, 0, -1])  # three unlabelled
    student, teacher = linear(name="student"), linear(bias=[2.0, -1.0, 0.5], name="teacher")
    alpha, temperature = 0.3, 2.5
    distiller = Distiller(teacher, student, HeadDistillation(temperature), student_loss_weight=alpha)
    distiller.compile()
    logs = distiller.evaluate(x, y, batch_size=12, return_dict=True, verbose=0)

    s, t = np_logits(student, x), np_logits(teacher, x)
    p_t, log_p_t, log_p_s = np.exp(log_softmax(t / temperature)), log_softmax(t / temperature), log_softmax(s / temperature)
    kl = (p_t * (log_p_t - log_p_s)).sum(axis=1).mean()  # over all 12 examples
    known = y >= 0
    ce = -log_softmax(s)[known, y[known]].mean()  # over the 9 labelled ones
    expected = alpha * ce + (1 - alpha) * temperature**2 * kl
    assert logs["student_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["distillation_loss"] == pytest.approx(temperature**2 * kl, rel=1e-5)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["accuracy"] == pytest.approx((s.argmax(1) == y)[known].mean())

    # Cached teacher logits, or probabilities (log p are logits up to a shift), give the same loss.
    for key, value in (("teacher_logits", t), ("teacher_probabilities", np.exp(log_softmax(t)))):
        cached = distiller.evaluate(x, {"labels": y, key: value}, batch_size=12, return_dict=True, verbose=0)
        assert cached["loss"] == pytest.approx(expected, rel=1e-5)
    unlabelled = distiller.evaluate(x, batch_size=12, return_dict=True, verbose=0)
    assert unlabelled["student_loss"] == 0 and unlabelled["loss"] == pytest.approx((1 - alpha) * temperature**2 * kl, rel=1e-5)


def test_alpha_one_is_plain_training(data3):
    x, y = data3
    plain, student, teacher = cnn((4,)), cnn((4,)), cnn((16,))
    student.set_weights(plain.get_weights())
    plain.compile(keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    distiller = Distiller(teacher, student, student_loss_weight=1.0)
    distiller.compile(keras.optimizers.Adam(1e-2))
    data = tfptm.data.from_arrays(x, y, batch_size=16, shuffle=False)
    plain.fit(data, epochs=2, shuffle=False, verbose=0)
    distiller.fit(data, epochs=2, shuffle=False, verbose=0)
    before = weights(cnn((4,)))
    for a, b, c in zip(weights(plain), weights(student), before):
        np.testing.assert_allclose(a, b, atol=2e-5)
    assert any(not np.allclose(a, c) for a, c in zip(weights(plain), before))


def test_only_the_student_trains_and_the_teacher_stays_in_inference_mode(data3):
    x, y = data3
    student, teacher = cnn((4,)), cnn((8, 16))  # the teacher has BatchNorm layers
    teacher_before, student_before = weights(teacher), weights(student)
    distiller = Distiller(teacher, student, HeadDistillation(3.0), student_loss_weight=0.5)
    distiller.compile(keras.optimizers.Adam(1e-2))
    distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert {id(v) for v in distiller.trainable_weights} == {id(v) for v in student.trainable_weights}
    for name, a, b in zip([w.path for w in teacher.weights], teacher_before, weights(teacher)):
        np.testing.assert_array_equal(a, b, err_msg=name)  # kernels and BN moving statistics
    assert any("moving_mean" in w.path for w in teacher.weights)
    assert all(not np.allclose(a, b) for a, b in zip(student_before, weights(student)) if a.size > 1)


class CountingIdentity(keras.layers.Layer):
    calls = 0

    def call(self, x):
        CountingIdentity.calls += 1  # Python side effect: counts traces and eager calls
        return x


def test_cached_teacher_outputs_train_the_same_without_running_the_teacher():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 3, 40)
    y[::5] = -1  # some unlabelled examples
    teacher = linear(bias=[1.0, 0.0, -1.0], name="teacher", extra_layer=CountingIdentity())
    students = [linear(name="student_a"), linear(name="student_b")]
    students[1].set_weights(students[0].get_weights())

    cached = cache_teacher_outputs(teacher, x, y, batch_size=8, shuffle=False)
    distiller = Distiller(teacher, students[0], HeadDistillation(2.0), student_loss_weight=0.5)
    distiller.compile(keras.optimizers.SGD(0.1))
    CountingIdentity.calls = 0
    distiller.fit(cached, epochs=2, shuffle=False, verbose=0)
    assert CountingIdentity.calls == 0

    live = Distiller(teacher, students[1], HeadDistillation(2.0), student_loss_weight=0.5)
    live.compile(keras.optimizers.SGD(0.1))
    live.fit(tfptm.data.from_arrays(x, y, batch_size=8, shuffle=False), epochs=2, shuffle=False, verbose=0)
    assert CountingIdentity.calls > 0
    for a, b in zip(weights(students[0]), weights(students[1])):
        np.testing.assert_allclose(a, b, atol=1e-6)

    # A labelled dataset read once gives the same cache as the arrays.
    again = cache_teacher_outputs(teacher, tfptm.data.from_arrays(x, y, batch_size=7, shuffle=False), batch_size=8, shuffle=False)
    first, second = next(iter(cached)), next(iter(again))
    np.testing.assert_allclose(first[1]["teacher_logits"], second[1]["teacher_logits"], atol=1e-6)
    np.testing.assert_array_equal(first[1]["labels"], second[1]["labels"])


def test_cached_outputs_pair_a_teacher_and_a_student_that_read_different_inputs():
    """Two tokenizers, say: the teacher reads `x`, the student its own inputs; the cache keeps them aligned."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(24, 4)).astype("float32"), rng.integers(0, 3, 24)
    student_x = (x[:, ::-1] * 2.0).copy()  # another view of each example, in the same order
    teacher = linear(bias=[1.0, 0.0, -1.0], name="teacher")
    cached = cache_teacher_outputs(teacher, x, y, batch_size=24, shuffle=False, student_inputs={"x": student_x})
    inputs, targets = next(iter(cached))
    np.testing.assert_array_equal(inputs["x"], student_x)
    np.testing.assert_allclose(targets["teacher_logits"], np_logits(teacher, x), atol=1e-5)
    student = linear(name="student")
    distiller = Distiller(teacher, student, HeadDistillation(1.0), student_loss_weight=0.0)
    distiller.compile(keras.optimizers.SGD(0.5))
    history = distiller.fit(cached, epochs=20, shuffle=False, verbose=0).history
    assert history["distillation_loss"][-1] < 0.5 * history["distillation_loss"][0]
    with pytest.raises(TfptmError, match="student_inputs has \\[10\\] examples and x has 24"):
        cache_teacher_outputs(teacher, x, y, student_inputs=student_x[:10])


def test_hint_loss_trains_the_projection(data3):
    x, y = data3
    student, teacher = cnn((4, 8)), cnn((8, 16))
    distiller = Distiller(teacher, student, [HeadDistillation(), Hint("backbone", "backbone")])
    distiller.compile(keras.optimizers.Adam(1e-2))
    kernel_before = distiller.projection.kernel.numpy()
    history = distiller.fit(x, y, batch_size=16, epochs=4, verbose=0).history
    assert distiller.projection.kernel.shape == (8, 16)  # student width -> teacher width, per position
    assert not np.allclose(kernel_before, distiller.projection.kernel.numpy())
    assert history["hint_loss"][-1] < history["hint_loss"][0]
    assert any(id(v) == id(distiller.projection.kernel) for v in distiller.trainable_weights)

    cached = cache_teacher_outputs(teacher, x, y, hint_layer="backbone", batch_size=16, seed=0)
    assert distiller.fit(cached, epochs=1, shuffle=False, verbose=0).history["hint_loss"][0] > 0
    with pytest.raises(TfptmError, match="no teacher_features for the hint"):
        distiller.fit(cache_teacher_outputs(teacher, x, y, batch_size=16), epochs=1, shuffle=False, verbose=0)
    with pytest.raises(TfptmError, match="hint features differ in shape"):
        Distiller(teacher, cnn((4,)), [HeadDistillation(), Hint("backbone", "backbone")])


def test_callbacks_validation_data_and_the_exported_student(data3, tmp_path):
    x, y = data3
    student = cnn((4,))
    distiller = Distiller(cnn((8,)), student, student_loss_weight=0.2)
    distiller.compile(keras.optimizers.Adam(1e-2))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e9, patience=1)
    history = distiller.fit(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=10, callbacks=[stop], verbose=0).history
    assert len(history["loss"]) == 2  # no epoch improves by 1e9
    assert {"val_loss", "val_student_loss", "val_distillation_loss", "val_accuracy"} <= set(history)

    expected = student.predict(x, verbose=0)
    np.testing.assert_allclose(distiller.predict(x, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-5)  # still probabilities
    exported = tfptm.export.tflite(distiller.student, tmp_path / "student.tflite", quantization="float32")
    np.testing.assert_allclose(tfptm.export.run_tflite(exported.path, x), expected, atol=1e-5)


def test_config_and_keras_file_round_trip_and_errors(tmp_path):
    distiller = Distiller(linear(name="t"), linear(name="s"), [HeadDistillation(3.0), Hint("x", "x", 0.5)],
                          student_loss_weight=0.25)
    clone = Distiller.from_config(distiller.get_config())
    assert clone.student_loss_weight == 0.25 and clone.distillation_losses[1] == Hint("x", "x", 0.5)
    assert clone.distillation_losses[0].get_config() == {"temperature": 3.0, "kind": None}
    distiller.save(tmp_path / "distiller.keras")
    loaded = keras.models.load_model(tmp_path / "distiller.keras")  # registered as tfptm>Distiller
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    for part in ("student", "teacher", "projection"):
        for a, b in zip(weights(getattr(loaded, part)), weights(getattr(distiller, part)), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=part)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.student.predict(x, verbose=0), atol=1e-6)
    assert teacher_outputs(clone.teacher, x, hint_layer="x")["teacher_features"].shape == (5, 4)

    with pytest.raises(TfptmError, match="student_loss_weight \\(alpha\\) is 1.5"):
        Distiller(linear(name="t"), linear(name="s"), student_loss_weight=1.5)
    with pytest.raises(TfptmError, match="temperature is 0; expected a number > 0"):
        Distiller(linear(name="t"), linear(name="s"), HeadDistillation(0))
    with pytest.raises(TfptmError, match="student has 3 classes and the teacher 5"):
        Distiller(cnn((4,), classes=5), cnn((4,)))
    softmax_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(TfptmError, match="ends in a softmax and has no 'head_logits' layer"):
        Distiller(linear(name="t"), softmax_only)
    with pytest.raises(TfptmError, match="no top-level layer 'nope'"):
        Distiller(linear(name="t"), linear(name="s"), [Hint("x", "nope")])
    with pytest.raises(TfptmError, match="metric 'auc' is not a keras.metrics.Metric"):
        distiller.compile(metrics=["auc"])
    with pytest.raises(TfptmError, match="unknown keys"):
        distiller.compile()
        distiller.evaluate(np.zeros((2, 4)), {"label": np.zeros(2)}, verbose=0)


MIRRORED = """
import json, sys
import numpy as np, keras, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tfptm
from tfptm.compress import Distiller, HeadDistillation

def models():
    inputs = keras.Input((8, 8, 1), name="pixels")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(inputs))
    student = tfptm.build_model(keras.Model(inputs, hidden), tfptm.Head("multiclass", num_classes=3))
    teacher = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,), input_scale=1 / 16)
    return student, tfptm.build_model(teacher, tfptm.Head("multiclass", num_classes=3))

rng = np.random.default_rng(0)
x, y = rng.random((32, 8, 8, 1)).astype("float32") * 16, rng.integers(0, 3, 32)
y[[0, 1, 2, 9, 17]] = -1  # unlabelled, unevenly spread over the replicas' halves of each batch
results = {}
initial = None
for name, strategy in (("mirrored", tfptm.training.get_strategy("mirrored")), ("single", tf.distribute.get_strategy())):
    with strategy.scope():
        student, teacher = models()
        if initial is None:
            initial = (student.get_weights(), teacher.get_weights())
        student.set_weights(initial[0]); teacher.set_weights(initial[1])
        distiller = Distiller(teacher, student, HeadDistillation(2.0), student_loss_weight=0.4)
        distiller.compile(keras.optimizers.SGD(0.5))
    history = distiller.fit(tfptm.data.from_arrays(x, y, batch_size=8, shuffle=False), epochs=2, shuffle=False, verbose=0).history
    results[name] = {"replicas": strategy.num_replicas_in_sync, "history": history,
                     "weights": [w.tolist() for w in student.get_weights()]}
json.dump(results, open(sys.argv[1], "w"))
"""


def test_mirrored_strategy_matches_one_device(tmp_path):
    script, out = tmp_path / "mirrored.py", tmp_path / "mirrored.json"
    script.write_text(MIRRORED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    mirrored, single = results["mirrored"], results["single"]
    assert (mirrored["replicas"], single["replicas"]) == (2, 1)
    for key in ("loss", "student_loss", "distillation_loss", "accuracy"):
        np.testing.assert_allclose(mirrored["history"][key], single["history"][key], rtol=1e-4, err_msg=key)
    for a, b in zip(mirrored["weights"], single["weights"]):
        # float32 sums in another order across 2 replicas; this toy model's weights reach hundreds, so the noise grows
        # with them (up to 1e-3 relative seen); a real error (e.g. a loss not divided by replicas) is a factor of 2
        np.testing.assert_allclose(a, b, rtol=5e-3, atol=1e-5)


def per_token_linear(bias=None, name="tagger"):
    """Token ids (batch, steps) -> one-hot of 5 ids -> Dense `head_logits` (3 tags) -> softmax, with a padding_mask
    input, as a token classifier's: logits computable in NumPy."""
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="bool", name="padding_mask")
    features = keras.layers.Lambda(lambda t: keras.ops.one_hot(t, 5), name="one_hot")(ids)
    logits = keras.layers.Dense(3, name="head_logits")(features)
    model = keras.Model({"token_ids": ids, "padding_mask": mask},
                        keras.layers.Activation("softmax", name="tag_probabilities")(logits), name=name)
    if bias is not None:
        kernel, _ = model.get_layer("head_logits").get_weights()
        model.get_layer("head_logits").set_weights([kernel, np.asarray(bias, "float32")])
    return model


def test_the_per_token_loss_matches_a_hand_computation():
    """Token classifiers: every real token adds to the soft term, labelled first pieces (not -1) to the hard term,
    padding to neither; the token accuracy counts labelled tokens."""
    rng = np.random.default_rng(2)
    ids = rng.integers(1, 5, size=(4, 6)).astype("int32")
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4, [1] * 5 + [0]], dtype=bool)
    ids[~mask] = 0
    labels = rng.integers(0, 3, size=(4, 6))
    labels[rng.random((4, 6)) < 0.3] = -1  # continuation pieces, [CLS], [SEP]
    labels[~mask] = -1
    student, teacher = per_token_linear(name="student"), per_token_linear(bias=[1.0, -0.5, 0.25], name="teacher")
    alpha, temperature = 0.4, 2.0
    distiller = Distiller(teacher, student, HeadDistillation(temperature), student_loss_weight=alpha)
    distiller.compile()
    x = {"token_ids": ids, "padding_mask": mask}
    logs = distiller.evaluate(x, labels, batch_size=4, return_dict=True, verbose=0)

    onehot = np.eye(5, dtype="float32")[ids]
    s, t = np_logits(student, onehot), np_logits(teacher, onehot)
    p_t, log_p_t, log_p_s = np.exp(log_softmax(t / temperature)), log_softmax(t / temperature), log_softmax(s / temperature)
    kl = (p_t * (log_p_t - log_p_s)).sum(axis=-1)[mask].mean()  # over the 17 real tokens
    known = labels >= 0
    ce = -np.take_along_axis(log_softmax(s), np.maximum(labels, 0)[..., None], -1)[..., 0][known].mean()
    assert logs["distillation_loss"] == pytest.approx(temperature**2 * kl, rel=1e-5)
    assert logs["student_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["loss"] == pytest.approx(alpha * ce + (1 - alpha) * temperature**2 * kl, rel=1e-5)
    assert logs["accuracy"] == pytest.approx((s.argmax(-1) == labels)[known].mean())
