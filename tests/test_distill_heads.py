"""Every head kind distils: the Distiller's terms for binary, multilabel, regression and embedding students against
hand computations in NumPy; Keras's own losses in a tfptm Distiller; the old signature and import path."""

import sys
import warnings

import keras
import numpy as np
import pytest

import tfptm
from tfptm.compress import Distiller, EmbeddingDistillation, HeadDistillation, head_kind
from tfptm.errors import TfptmError

RNG = np.random.default_rng(7)
X = RNG.normal(size=(10, 4)).astype("float32")


def linear(units, activation, bias=None, name="linear", output="probabilities"):
    """x (4 features) -> Dense `head_logits` -> activation: a tfptm head whose logits are computable in NumPy."""
    inputs = keras.Input((4,), name="x")
    logits = keras.layers.Dense(units, name="head_logits")(inputs)
    model = keras.Model(inputs, keras.layers.Activation(activation, name=output)(logits), name=name)
    if bias is not None:
        kernel, _ = model.get_layer("head_logits").get_weights()
        model.get_layer("head_logits").set_weights([kernel, np.asarray(bias, "float32")])
    return model


def embedder(name, bias=None):
    inputs = keras.Input((4,), name="x")
    dense = keras.layers.Dense(3, name="project")
    vectors = keras.layers.UnitNormalization(name="embeddings")(dense(inputs))
    model = keras.Model(inputs, vectors, name=name)
    if bias is not None:
        kernel, _ = dense.get_weights()
        dense.set_weights([kernel, np.asarray(bias, "float32")])
    return model


def np_logits(model, x, layer="head_logits"):
    kernel, bias = model.get_layer(layer).get_weights()
    return x @ kernel + bias


def log_sigmoid(z):
    return -np.logaddexp(0, -z)


def bernoulli_kl(t, s):
    p = 1 / (1 + np.exp(-t))
    return p * (log_sigmoid(t) - log_sigmoid(s)) + (1 - p) * (log_sigmoid(-t) - log_sigmoid(-s))


def bce_from_logits(z, y):
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


def evaluate(distiller, x, y=None):
    distiller.compile()
    return distiller.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)


@pytest.mark.parametrize("kind, units", [("binary", 1), ("multilabel", 3)])
def test_sigmoid_heads_match_a_hand_computation(kind, units):
    teacher = linear(units, "sigmoid", bias=np.linspace(1.0, -1.0, units), name="teacher")
    student = linear(units, "sigmoid", name="student")
    assert head_kind(student) == kind
    y = RNG.integers(0, 2, size=(10, units)).astype("float32")
    y[[2, 5]] = -1  # unlabelled examples (every entry missing)
    y[7, 0] = -1  # one missing entry of a multilabel example (binary: a whole example)
    weight, temperature = 0.3, 2.0
    logs = evaluate(Distiller(teacher, student, HeadDistillation(temperature), student_loss_weight=weight), X,
                    y if units > 1 else y[:, 0])
    t, s = np_logits(teacher, X), np_logits(student, X)
    soft = temperature**2 * bernoulli_kl(t / temperature, s / temperature).mean(axis=1).mean()
    known = y >= 0
    hard = bce_from_logits(s, np.maximum(y, 0))[known].mean()  # over the known entries
    assert logs["distillation_loss"] == pytest.approx(soft, rel=1e-5)
    assert logs["student_loss"] == pytest.approx(hard, rel=1e-5)
    assert logs["loss"] == pytest.approx(weight * hard + (1 - weight) * soft, rel=1e-5)
    assert logs["accuracy"] == pytest.approx(((s > 0) == (y > 0.5))[known].mean(), rel=1e-5)


def test_regression_heads_match_a_hand_computation():
    teacher = linear(2, "linear", bias=[0.5, -2.0], name="teacher", output="predictions")
    student = linear(2, "linear", name="student", output="predictions")
    assert head_kind(student) == "regression"
    y = RNG.normal(size=(10, 2)).astype("float32")
    y[3] = np.nan  # unlabelled
    logs = evaluate(Distiller(teacher, student, student_loss_weight=0.5), X, y)
    t, s = np_logits(teacher, X), np_logits(student, X)
    soft = ((s - t) ** 2).mean()  # no temperature for regression
    known = ~np.isnan(y)
    hard = ((s - np.nan_to_num(y)) ** 2)[known].mean()
    assert logs["distillation_loss"] == pytest.approx(soft, rel=1e-5)
    assert logs["student_loss"] == pytest.approx(hard, rel=1e-5)
    assert logs["mae"] == pytest.approx(np.abs(s - np.nan_to_num(y))[known].mean(), rel=1e-5)


@pytest.mark.parametrize("loss", ["cosine", "mse"])
def test_embedding_students_match_a_hand_computation(loss):
    teacher, student = embedder("teacher", bias=[1.0, 0.0, -1.0]), embedder("student")
    assert head_kind(student) == "embedding"
    logs = evaluate(Distiller(teacher, student, EmbeddingDistillation(loss), student_loss_weight=0.0), X)

    def unit(v):
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    t, s = unit(np_logits(teacher, X, "project")), unit(np_logits(student, X, "project"))
    expected = (1 - (t * s).sum(axis=1)).mean() if loss == "cosine" else ((t - s) ** 2).mean()
    assert logs["distillation_loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def test_an_embedding_student_learns_the_teacher_vectors_and_is_the_default_loss():
    teacher, student = embedder("teacher", bias=[1.0, 0.0, -1.0]), embedder("student")
    distiller = Distiller(teacher, student, student_loss_weight=0.0)
    assert isinstance(distiller.distillation_losses[0], EmbeddingDistillation)
    distiller.compile(keras.optimizers.Adam(0.05))
    history = distiller.fit(X, epochs=30, batch_size=5, verbose=0).history
    assert history["distillation_loss"][-1] < 0.2 * history["distillation_loss"][0]
    with pytest.raises(TfptmError, match="the teacher's vectors have 3 dimensions and the student's 2"):
        inputs = keras.Input((4,), name="x")
        narrow = keras.Model(inputs, keras.layers.UnitNormalization(name="embeddings")(keras.layers.Dense(2)(inputs)))
        Distiller(teacher, narrow, EmbeddingDistillation())


def test_keras_own_losses_work_in_a_tfptm_distiller():
    """keras.distillation.LogitsDistillation on tfptm's probability heads reads the logits, not the probabilities."""
    teacher, student = linear(3, "softmax", bias=[1.0, 0.0, -1.0], name="teacher"), linear(3, "softmax", name="student")
    ours = evaluate(Distiller(teacher, student, HeadDistillation(2.0), student_loss_weight=0.0), X)
    keras_loss = keras.distillation.LogitsDistillation(temperature=2.0, loss=keras.losses.KLDivergence())
    theirs = evaluate(Distiller(teacher, student, keras_loss, student_loss_weight=0.0), X)
    assert theirs["distillation_loss"] == pytest.approx(ours["distillation_loss"], rel=1e-4)
    # Keras 3.15's default loss="kl_divergence" is read as a function its KL branch misses; tfptm mends it
    with pytest.warns(UserWarning, match="compares logits as probabilities"):
        mended = Distiller(teacher, student, keras.distillation.LogitsDistillation(temperature=2.0), student_loss_weight=0.0)
    assert evaluate(mended, X)["distillation_loss"] == pytest.approx(ours["distillation_loss"], rel=1e-4)


def test_the_old_signature_warns_and_gives_the_same_distiller():
    teacher, student = linear(3, "softmax", bias=[1.0, 0.0, -1.0], name="teacher"), linear(3, "softmax", name="student")
    y = np.arange(10) % 3
    with pytest.warns(DeprecationWarning, match="use Distiller\\(teacher, student"):
        old = Distiller(student, teacher, alpha=0.3, temperature=2.0)
    assert old.student is student and old.teacher is teacher and old.student_loss_weight == 0.3
    new = Distiller(teacher, student, HeadDistillation(2.0), student_loss_weight=0.3)
    assert evaluate(old, X, y) == pytest.approx(evaluate(new, X, y))
    sys.modules.pop("tfptm.distill", None)  # an earlier test may have imported it already: import it afresh
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from tfptm.distill import Distiller as moved
    assert moved is Distiller and caught[0].category is DeprecationWarning
    assert tfptm.Distiller is Distiller


def test_head_kinds_must_agree():
    with pytest.raises(TfptmError, match="the teacher's head is multiclass and the student's binary"):
        Distiller(linear(3, "softmax", name="t"), linear(1, "sigmoid", name="s"))
