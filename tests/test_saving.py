"""tfptm.save_model: a lean .keras file (no optimizer state) that still loads compiled and predicts the same."""

import os

import keras
import numpy as np

import tfptm
import tfptm.training  # registers tfptm's optimizers and schedules for keras.saving.load_model


def fitted_model(digit_batch):
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(16, 32), input_scale=1 / 16)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
    optimizer = tfptm.training.optimizer("adamw", 1e-3, weight_decay=0.01, warmup_fraction=0.1, decay="cosine",
                                         total_steps=20)
    tfptm.training.recompile(model, optimizer=optimizer)
    x, y = digit_batch
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return model


def test_lean_file_is_smaller_predicts_the_same_and_loads_compiled(tmp_path, digit_batch):
    model = fitted_model(digit_batch)
    optimizer, steps = model.optimizer, int(model.optimizer.iterations)
    assert steps > 0 and optimizer.variables  # Adam's slots exist: there is state to leave out
    lean, full = tmp_path / "lean.keras", tmp_path / "full.keras"
    tfptm.save_model(model, lean)
    tfptm.save_model(model, full, include_optimizer=True)
    assert model.optimizer is optimizer  # the caller's model keeps its optimizer
    weight_bytes = sum(w.nbytes for w in model.get_weights())
    # Adam keeps two slots per trainable weight: the full file holds them, the lean one does not
    assert os.path.getsize(lean) + weight_bytes < os.path.getsize(full), (os.path.getsize(lean), os.path.getsize(full))

    x, y = digit_batch
    expected = model.predict(x, verbose=0)
    loaded = keras.saving.load_model(lean)  # compile=True by default
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert loaded.optimizer is not None and loaded.compiled
    assert type(loaded.optimizer).__name__ == type(optimizer).__name__  # the compile config was kept
    assert int(loaded.optimizer.iterations) == 0  # a fresh optimizer: no state was saved
    before = [w.copy() for w in loaded.get_weights()]
    history = loaded.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and int(loaded.optimizer.iterations) == 1
    assert any(not np.array_equal(a, b) for a, b in zip(before, loaded.get_weights()))

    # with the optimizer: its step count comes back
    assert int(keras.saving.load_model(full).optimizer.iterations) == steps

    # the original model trains on after saving
    model.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == steps + 1


def test_an_uncompiled_model_saves_as_it_is(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    tfptm.save_model(model, tmp_path / "plain.keras")
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "plain.keras").predict(x, verbose=0),
                               model.predict(x, verbose=0))
