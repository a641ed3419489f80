import numpy as np
import pytest

import tfptm
from tfptm.errors import TfptmError


def test_digits_are_the_real_scikit_learn_images(digits):
    images, labels = digits
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.float32
    assert images.min() == 0 and images.max() == 16
    assert sorted(set(labels.tolist())) == list(range(10))


def test_select_classes_keeps_and_relabels(digits):
    images, labels = digits
    x, y = tfptm.data.select_classes(images, labels, [5, 6, 7, 8, 9])
    assert len(x) == int(np.sum(labels >= 5))
    assert sorted(set(y.tolist())) == [0, 1, 2, 3, 4]
    # relabelled, not reordered: the first kept image is the first 5..9 digit
    first = int(np.flatnonzero(labels >= 5)[0])
    assert np.array_equal(x[0], images[first]) and y[0] == labels[first] - 5


def test_sample_per_class_is_disjoint_balanced_and_seeded(digits):
    images, labels = digits
    (xs, ys), (xr, yr) = tfptm.data.sample_per_class(images, labels, 7, seed=3)
    assert np.bincount(ys).tolist() == [7] * 10
    assert len(xs) + len(xr) == len(images)
    (xs2, _), _ = tfptm.data.sample_per_class(images, labels, 7, seed=3)
    assert np.array_equal(xs, xs2)
    sampled = {x.tobytes() for x in xs}
    assert not any(x.tobytes() in sampled for x in xr[:200]) or len(sampled) < len(xs)


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((3, 2)), np.zeros(4), "3 feature rows but labels of shape (4,)"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), np.zeros(2), "NaN or infinity (first at example 0)"),
        (np.zeros((0, 2)), np.zeros(0), "features are empty"),
    ],
)
def test_bad_arrays_give_one_clear_error(x, y, message):
    with pytest.raises(TfptmError, match=None) as info:
        tfptm.data.from_arrays(x, y)
    assert message in str(info.value)


def test_sample_per_class_too_few_examples():
    with pytest.raises(TfptmError, match="class 1 has 1 examples; asked for 2"):
        tfptm.data.sample_per_class(np.zeros((3, 1)), np.array([0, 0, 1]), 2)


def test_from_arrays_is_deterministic_with_a_seed_and_batches_globally():
    x = np.arange(20, dtype="float32")[:, None]
    first = [b[0].numpy().ravel().tolist() for b in tfptm.data.from_arrays(x, np.arange(20), batch_size=8, seed=1)]
    again = [b[0].numpy().ravel().tolist() for b in tfptm.data.from_arrays(x, np.arange(20), batch_size=8, seed=1)]
    assert first == again
    assert [len(b) for b in first] == [8, 8, 4]
    assert sorted(sum(first, [])) == list(range(20))
    assert sum(first, []) != list(range(20))  # shuffled
