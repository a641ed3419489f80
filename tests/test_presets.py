"""KerasHub presets from local directories: Hugging Face format (real MiniLM), KerasHub format, offline handles."""

import os
import time

import numpy as np
import pytest

import tfptm
from tfptm.backbones import presets





@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return presets.load_preset(minilm_dir, sequence_length=16)


def test_minilm_from_hugging_face_directory(minilm):
    backbone, preprocessor = minilm
    inputs = preprocessor(["hello world", "a longer second sentence"])
    assert inputs["token_ids"].numpy()[0, :5].tolist() == [101, 7592, 2088, 102, 0]
    assert sorted(backbone.input) == ["padding_mask", "segment_ids", "token_ids"]
    # 22,713,216 in the KerasHub BertBackbone; the unused pooler (147,840) is not part of the features model.
    assert backbone.count_params() == 22_565_376
    features = backbone(inputs)
    assert features.shape == (2, 16, 384) and np.isfinite(features.numpy()).all()
    names = [block for block, _ in tfptm.backbones.blocks(backbone)]
    assert names == ["stem"] + [f"transformer_layer_{i}" for i in range(6)]


def test_minilm_in_build_model(minilm):
    backbone, preprocessor = minilm
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))
    probabilities = model.predict(preprocessor(["hello world"]), verbose=0)
    assert probabilities.shape == (1, 2)
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    import keras_hub

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the"]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=8,
    )
    directory = str(tmp_path_factory.mktemp("tiny_bert"))
    backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return directory, backbone


def test_keras_hub_directory_round_trips(tiny_preset, tmp_path):
    directory, original = tiny_preset
    assert {"config.json", "metadata.json"} <= set(os.listdir(directory))
    backbone, preprocessor = presets.load_preset(directory, sequence_length=8)
    inputs = preprocessor(["hello world"])
    assert inputs["token_ids"].numpy()[0, :4].tolist() == [2, 5, 6, 3]
    np.testing.assert_allclose(backbone(inputs), original(inputs)["sequence_output"], rtol=1e-5, atol=1e-6)
    pooled = tfptm.backbones.get(directory, output="pooled_output")
    assert pooled.name == "backbone" and pooled.count_params() == original.count_params()
    np.testing.assert_allclose(pooled(inputs), original(inputs)["pooled_output"], rtol=1e-5, atol=1e-6)
    with pytest.raises(tfptm.TfptmError, match="expected one of pooled_output, sequence_output"):
        presets.load(directory, output="logits")
    # The features model saves and loads back as a .keras file in safe mode.
    path = str(tmp_path / "tiny.keras")
    backbone.save(path)
    np.testing.assert_allclose(tfptm.backbones.get(path)(inputs), backbone(inputs), rtol=1e-5, atol=1e-6)


OFFLINE_HANDLES = ["kaggle://x/y", "hf://x/y", "bert_tiny_en_uncased", "kaggle://keras/bert/keras/nope"]


@pytest.mark.parametrize("handle", OFFLINE_HANDLES)
def test_remote_handles_fail_fast_offline(handle, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    monkeypatch.setenv("TFPTM_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(tfptm.TfptmError) as error:
        tfptm.backbones.get(handle)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert "\n" not in message and handle.split("//")[-1] in message


def test_handle_matching_and_unknown_names(tmp_path):
    assert all(not presets._FILE_NAME.fullmatch(name) for name in presets.preset_names())
    assert presets._matches("bert_tiny_en_uncased") and presets._matches("hf://a/b")
    assert not presets._matches("backbone.keras") and not presets._matches(str(tmp_path))
    with pytest.raises(tfptm.TfptmError, match="Unknown backbone 'no_such_preset'"):
        tfptm.backbones.get("no_such_preset")
    (tmp_path / "config.json").write_text('{"neither": "keras nor transformers"}')
    with pytest.raises(tfptm.TfptmError, match="cannot be loaded by KerasHub"):
        tfptm.backbones.get(str(tmp_path))


def test_offline_kaggle_handles_resolve_through_kagglehubs_cache(tmp_path, monkeypatch):
    # A cache as kagglehub.model_download(handle, "config.json") leaves it: the file and its completion marker.
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    monkeypatch.setenv("TFPTM_OFFLINE", "1")
    from kagglehub.cache import Cache
    from kagglehub.handle import parse_model_handle

    handle = parse_model_handle("keras/bert/keras/bert_tiny_en_uncased/2")
    path = Cache().get_path(handle, "config.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("{}")
    Cache().mark_as_complete(handle, "config.json")
    assert presets.local_preset_dir("kaggle://keras/bert/keras/bert_tiny_en_uncased/2") == os.path.dirname(path)
    with pytest.raises(tfptm.TfptmError, match="not in the cache .*TFPTM_OFFLINE=1.*with a /VERSION"):
        presets.local_preset_dir("kaggle://keras/bert/keras/bert_tiny_en_uncased")  # the newest version needs the network
    with pytest.raises(tfptm.TfptmError, match="KerasHub preset 'bert_tiny_en_uncased'"):  # it pins a version not cached
        presets.local_preset_dir("bert_tiny_en_uncased")
