"""A real TFDS data set, small enough to prepare on disk inside a test (nothing is downloaded)."""

import numpy as np
import tensorflow_datasets as tfds


class TinyStripes(tfds.core.GeneratorBasedBuilder):
    """Eight 6x6 training images of two classes, dark (0) and light (1), and four test images."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(6, 6, 3)), "label": tfds.features.ClassLabel(names=["dark", "light"])}
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(8), "test": self._generate_examples(4)}

    def _generate_examples(self, n):
        for i in range(n):
            yield i, {"image": np.full((6, 6, 3), 200 * (i % 2), "uint8"), "label": i % 2}


def prepare(data_dir):
    """Prepares `tiny_stripes` under `data_dir` and returns `data_dir`."""
    TinyStripes(data_dir=str(data_dir)).download_and_prepare()
    return str(data_dir)
