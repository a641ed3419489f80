"""Models on raw strings (a TF Hub text module in the NNLM style): lists and NumPy string arrays work everywhere."""

import numpy as np
import pytest
import tensorflow as tf

import tfptm

TEXTS = ["a good film", "bad", "so so film here", "great fun"] * 3


class HashedWords(tf.Module):
    """Text in, a vector out: the mean of hashed word embeddings, as TF Hub's NNLM modules do."""

    def __init__(self):
        super().__init__()
        self.table = tf.Variable(tf.random.stateless_normal([64, 4], seed=[1, 2]))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, text):
        ids = tf.strings.to_hash_bucket_fast(tf.strings.split(text), 64)
        return tf.reduce_mean(tf.gather(self.table, ids), axis=1)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "hashed_words"
    tf.saved_model.save(HashedWords(), str(path))
    return tfptm.build_model(tfptm.backbones.get(str(path)), tfptm.Head("multiclass", num_classes=2))


FORMS = {
    "list": list(TEXTS),
    "unicode_array": np.array(TEXTS),
    "bytes_array": np.array([t.encode() for t in TEXTS]),
    "object_array": np.array(TEXTS, dtype=object),
}


@pytest.mark.parametrize("form", FORMS)
def test_evaluate_and_features_take_lists_and_numpy_string_arrays(text_model, form):
    expected = text_model.predict(tf.constant(TEXTS), verbose=0).argmax(-1)
    labels = np.arange(len(TEXTS)) % 2
    report = tfptm.evaluate(text_model, FORMS[form], labels)
    assert report["accuracy"] == pytest.approx(float(np.mean(expected == labels)))
    assert tfptm.evaluation.extract_features(text_model, FORMS[form]).shape == (len(TEXTS), 4)


@pytest.mark.parametrize("form", ["list", "unicode_array"])
def test_saved_model_parity_and_predict_on_strings(text_model, tmp_path, form):
    version = tfptm.export.saved_model(text_model, tmp_path, "text", class_names=["neg", "pos"])
    assert tfptm.export.check_saved_model(version, text_model, FORMS[form])["ok"]
    top = tfptm.export.predict(tmp_path / "text", TEXTS[:2], top_k=1)
    keras_ids = text_model.predict(tf.constant(TEXTS[:2]), verbose=0).argmax(-1)
    assert [pairs[0][0] for pairs in top] == [["neg", "pos"][i] for i in keras_ids]


def test_numbers_for_a_text_model_are_one_error_before_export(text_model, tmp_path):
    with pytest.raises(tfptm.errors.TfptmError, match="holds numbers; model .* takes text"):
        tfptm.export.export_checked(text_model, tmp_path, "text", quantizations=(), check_data=np.zeros((3,)))
    assert not (tmp_path / "text").exists()
