"""The recipe schema: one frozen dataclass per YAML section, with types, defaults and docs.

Every field carries its check (`tfptm.recipes.checks`) and a one-line
description in its metadata; `tfptm.recipes.validate` walks these classes,
so adding a field here is all it takes to accept it in YAML and `--set`.

Example:
>>> from tfptm.recipes.validate import validate
>>> recipe = validate({"backbone": {"name": "vgg_cnn"}})
>>> recipe.finetune.strategy, recipe.data.source
('two_stage', 'digits')
"""

import dataclasses

from tfptm.recipes import checks as c

REQUIRED = object()  # default of a field the recipe must give

DATA_SOURCES = ("digits", "arrays", "image_folder", "tfds", "csv", "jsonl", "text", "conll", "squad")
TEXT_SOURCES = ("csv", "jsonl", "tfds", "text")
CORPUS_SOURCES = ("text",)  # unlabelled documents: only for language-model pre-training
DEFAULT_MAX_LENGTH = 128  # tokens per text when data.max_length is null
TABLE_SOURCES = ("csv", "jsonl")  # tables of texts and labels (lists of labels: multilabel; numbers: regression)
TEXT_FILE_SOURCES = TABLE_SOURCES + ("conll", "squad")  # text files, tokenized by the backbone's own tokenizer
IMAGE_SOURCES = ("image_folder", "tfds")
ARRAY_SOURCES = ("digits", "arrays")
PATH_SOURCES = {"arrays": "a .npz file with x and y", "image_folder": "a directory of class folders",
                "csv": "a CSV file", "jsonl": "a JSONL file",
                "text": "a UTF-8 text file with one document per line, or a folder of .txt files",
                "conll": "a CoNLL file (word TAG per line, a blank line between sentences)",
                "squad": "a SQuAD-style JSON file (data/paragraphs/context/qas)"}
# The allowed values below are spelt out so that validation needs no TensorFlow; their owners are tfptm.heads (TASKS,
# POOLINGS), tfptm.jobs.fit.STAGES, tfptm.training (optimizers, DECAYS, distribute.STRATEGIES, precision.POLICIES),
# tfptm.export.litert.QUANTIZATIONS and tfptm.jobs.pretrain.PRETRAINERS; tests/test_package_layout.py keeps them equal.
TASKS = ("multiclass", "binary", "multilabel", "regression")
EMBEDDING = "embedding"  # head.task of sentence-embedding recipes (tfptm.tasks.embeddings): no tfptm.Head, vectors
TOKEN_CLASSIFICATION = "token_classification"  # a tag per word (tfptm.tasks.tokens): conll or jsonl data
QUESTION_ANSWERING = "question_answering"  # extractive QA (tfptm.tasks.spans): squad data
TOKEN_TASKS = (TOKEN_CLASSIFICATION, QUESTION_ANSWERING)
TOKEN_TASK_SOURCES = {TOKEN_CLASSIFICATION: ("conll", "jsonl"), QUESTION_ANSWERING: ("squad",)}
HEAD_TASKS = TASKS + (EMBEDDING,) + TOKEN_TASKS
EMBEDDING_POOLINGS = {"avg": "mean", "first": "cls"}  # head.pooling -> tfptm.tasks.embeddings.POOLINGS
EMBEDDING_STRATEGIES = ("full", "feature_extraction")  # contrastive fine-tuning of every weight, or none
POOLINGS = ("avg", "max", "flatten", "first")
STRATEGIES = ("feature_extraction", "full", "partial", "two_stage", "gradual", "lora")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "linear")
DISTRIBUTE = ("auto", "default", "mirrored", "multi_worker", "tpu")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
PRECISIONS = ("auto", "mixed_float16", "mixed_bfloat16", "float32")
PRETRAIN_OBJECTIVES = ("supervised", "mlm", "causal_lm")
REPRESENTATIVE = ("train", "test")


def field(default, check, doc, section=None):
    """A dataclass field with its check and documentation; mutable defaults are copied per instance."""
    metadata = {"check": check, "doc": doc, "section": section}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls, doc, optional=False):
    """A nested section field: `cls` (a schema dataclass), or null when `optional`."""
    default = None if optional else REQUIRED
    return dataclasses.field(default=default, metadata={"check": None, "doc": doc, "section": cls, "optional": optional})


@dataclasses.dataclass(frozen=True)
class Data:
    """Where the examples come from and how they are split and batched."""

    source: str = field("digits", c.choice(*DATA_SOURCES), "digits (bundled), arrays (.npz), image_folder, tfds, csv, "
                        "jsonl, text (pre-training corpus), conll (tagged words), squad (question answering)")
    path: str | None = field(None, c.optional(c.text), "file or directory for arrays, image_folder, csv, jsonl; tfds: the prepared data_dir")
    test_path: str | None = field(None, c.optional(c.text), "a separate test file/directory (else test_fraction is split off)")
    name: str | None = field(None, c.optional(c.text), "TFDS data set name (source tfds)")
    split: str = field("train", c.text, "TFDS training split")
    test_split: str | None = field(None, c.optional(c.text), "TFDS test split (else test_fraction is split off)")
    classes: tuple | None = field(None, c.optional(c.non_negative_int_list), "labels to keep, relabelled 0..n-1 in this order")
    shots: int | None = field(None, c.optional(c.positive_int), "labelled training examples per class (few-shot)")
    test_fraction: float = field(0.2, c.open_fraction, "share held out for testing when there is no test set")
    validation_fraction: float = field(0.0, c.rate, "share of the training examples used for validation")
    batch_size: int = field(32, c.positive_int, "global batch size (split across replicas)")
    image_size: tuple | None = field(None, c.optional(c.list_of(c.positive_int, length=2)), "[height, width] for images")
    text_column: str = field("text", c.text, "text field (csv, jsonl, tfds); with text_pair_column the first text "
                             "of each pair; head.task embedding: the anchor (query)")
    text_pair_column: str | None = field(None, c.optional(c.text), "csv, jsonl: the second text of each pair (set: "
                                         "the examples are text pairs); head.task embedding: the positive (required)")
    negative_column: str | None = field(None, c.optional(c.text), "head.task embedding: a hard negative per row (optional)")
    label_column: str = field("label", c.text, "label field (csv, jsonl, tfds); not read by head.task embedding")
    tokens_key: str = field("tokens", c.text, "head.task token_classification, jsonl: the key of each line's list of words")
    tags_key: str = field("tags", c.text, "head.task token_classification, jsonl: the key of each line's list of tags")
    doc_stride: int = field(128, c.positive_int, "head.task question_answering: context pieces between the starts "
                            "of two windows of a long context")
    max_length: int | None = field(None, c.optional(c.positive_int), "most tokens per text example (default 128); batches pad to their longest")
    length_buckets: bool = field(True, c.boolean, "text: batch training texts of similar length together (less padding, faster)")
    augment: bool = field(False, c.boolean, "image_folder, tfds: random flips, rotations and zooms of training images")
    strict: bool = field(False, c.boolean, "make every skipped input (an unreadable image, an empty text) an error")


@dataclasses.dataclass(frozen=True)
class Backbone:
    """The pre-trained network: a registered name or a handle, and keyword arguments for it."""

    name: str = field(REQUIRED, c.text, "a registered name (tfptm.backbones.available()) or a path/URL handle")
    args: dict = field({}, c.keyword_arguments, "keyword arguments for tfptm.backbones.get")


@dataclasses.dataclass(frozen=True)
class Head:
    """The task head (see tfptm.Head)."""

    task: str = field("multiclass", c.choice(*HEAD_TASKS), "what the model predicts; embedding: a sentence-embedding "
                      "model (vectors, no classes) fine-tuned contrastively on (text, text_pair) rows; "
                      "token_classification: a tag per word; question_answering: an answer span of a context")
    num_classes: int | None = field(None, c.optional(c.positive_int), "output classes (default: from the data)")
    pooling: str = field("avg", c.choice(*POOLINGS), "how features become one vector (embedding: avg = mean of the "
                         "real tokens, first = [CLS])")
    dropout: float = field(0.0, c.rate, "dropout before the output layer")
    hidden_units: int | None = field(None, c.optional(c.positive_int), "width of an optional hidden layer")
    label_smoothing: float = field(0.0, c.rate, "share of each target spread over the other classes")
    normalize: bool | None = field(None, c.optional(c.boolean), "embedding: L2-normalise the vectors; null: as the "
                                   "checkpoint's sentence-transformers files say (else true)")
    scale: float = field(20.0, c.positive_number, "embedding: similarity scale of the in-batch ranking loss "
                         "(sentence-transformers' 20)")
    recall_at: tuple = field((1, 10), c.list_of(c.positive_int, unique=True), "embedding: the k of recall@k on "
                             "the held-out pairs")
    max_answer_length: int = field(30, c.positive_int, "question_answering: most word pieces in a predicted answer")


@dataclasses.dataclass(frozen=True)
class Finetune:
    """Which weights train, for how long, at what rate."""

    strategy: str = field("two_stage", c.choice(*STRATEGIES), "feature_extraction, full, partial, two_stage, gradual, lora")
    epochs: int = field(10, c.positive_int, "epochs of the (last) fine-tuning stage (gradual: once every block trains)")
    learning_rate: float = field(1e-4, c.positive_number, "learning rate of the (last) stage")
    head_epochs: int | None = field(5, c.optional(c.positive_int), "two_stage, gradual: epochs training the head alone")
    head_learning_rate: float = field(1e-3, c.positive_number, "two_stage: learning rate of the head stage")
    top_blocks: int | None = field(None, c.optional(c.positive_int), "partial: backbone blocks that train, from the top")
    freeze_batchnorm: bool = field(True, c.boolean, "keep BatchNorm frozen (inference mode) while fine-tuning")
    unfreeze_every: int = field(1, c.positive_int, "gradual: epochs between unfreezing one more block")
    lora_rank: int = field(8, c.positive_int, "lora: rank of the low-rank updates")
    monitor: str | None = field(None, c.optional(c.text), "metric for early stopping and keep_best (default val_loss with validation data, else loss)")
    keep_best: bool = field(True, c.boolean, "with validation data: end with the weights of the best epoch on monitor (else the last)")
    patience: int | None = field(None, c.optional(c.positive_int), "stop after this many epochs without improvement (null: never)")
    backup_every_steps: int = field(100, c.positive_int, "steps between backups (also at every epoch end); a killed run resumes from the last")
    backup_min_seconds: float = field(0, c.non_negative_number, "skip an epoch-end backup when the last is younger than this (a large model's backup takes seconds)")
    mixed_precision: str = field("auto", c.choice(*PRECISIONS), "dtype policy: auto (mixed on GPUs, float32 on CPUs) or a Keras policy")


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """The optimizer and its learning-rate schedule."""

    name: str = field("adam", c.choice(*OPTIMIZERS), "Keras optimizer")
    weight_decay: float = field(0.0, c.non_negative_number, "decoupled weight decay (adamw) or L2-style decay")
    momentum: float = field(0.9, c.rate, "sgd momentum")
    clipnorm: float | None = field(None, c.optional(c.positive_number), "clip each gradient to this norm")
    schedule: str = field("constant", c.choice(*SCHEDULES), "learning-rate decay over finetune.epochs, restarted each stage")
    warmup_fraction: float = field(0.0, c.rate, "share of the schedule's steps spent warming up")
    layerwise_decay: float | None = field(None, c.optional(c.decay), "layer-wise LR decay from the top block down")


@dataclasses.dataclass(frozen=True)
class Distribute:
    """tf.distribute strategy (see tfptm.training.get_strategy)."""

    strategy: str = field("auto", c.choice(*DISTRIBUTE), "auto, default, mirrored, multi_worker, tpu")


@dataclasses.dataclass(frozen=True)
class Pretrain:
    """Pre-training the backbone before fine-tuning (absent or null: none)."""

    objective: str = field(REQUIRED, c.choice(*PRETRAIN_OBJECTIVES), "supervised, mlm (masked LM) or causal_lm")
    data: Data = section(Data, "the pre-training examples (labels only for supervised)")
    epochs: int = field(10, c.positive_int, "pre-training epochs")
    learning_rate: float = field(1e-3, c.positive_number, "pre-training learning rate")
    mask_rate: float = field(0.15, c.open_fraction, "mlm: share of tokens masked")
    warmup_fraction: float | None = field(
        0.1, c.optional(c.open_fraction), "mlm, causal_lm: share of steps warming up AdamW, then linear decay; null: constant rate"
    )


@dataclasses.dataclass(frozen=True)
class Distill:
    """Knowledge distillation from a teacher into this recipe's model (absent or null: none)."""

    teacher: str = field(REQUIRED, c.text, "the teacher: a .keras model or a run directory holding model.keras")
    temperature: float = field(2.0, c.positive_number, "softmax temperature for the soft targets")
    alpha: float = field(0.5, c.weight, "weight of the hard-label loss (1 - alpha on the teacher's)")
    epochs: int = field(10, c.positive_int, "distillation epochs")
    learning_rate: float = field(1e-3, c.positive_number, "distillation learning rate")


@dataclasses.dataclass(frozen=True)
class Export:
    """What to export after training, and the parity checks against Keras."""

    dir: str | None = field(None, c.optional(c.text), "export base directory (default: export/ inside the run directory)")
    model_name: str = field("model", c.plain_name, "SavedModel directory name and TFLite file stem")
    saved_model: bool = field(False, c.boolean, "export a SavedModel in TF Serving's layout")
    tflite: tuple = field((), c.list_of(c.choice(*QUANTIZATIONS), unique=True), "TFLite quantizations to export")
    representative_data: str | None = field(None, c.optional(c.choice(*REPRESENTATIVE)), "int8: calibration inputs")
    int8_io: bool = field(False, c.boolean, "int8: integer input and output tensors too")
    parity: bool = field(True, c.boolean, "check every artifact against the Keras model on the test set")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A whole run: data, backbone, head, fine-tuning, optimizer, distribution, pre-training, distillation, export."""

    name: str = field("run", c.plain_name, "a short name, used for run directories")
    description: str = field("", c.any_text, "one line saying what the recipe does")
    seed: int = field(0, c.non_negative_int, "random seed for sampling, shuffling and initialization")
    data: Data = section(Data, "the fine-tuning data")
    backbone: Backbone = section(Backbone, "the pre-trained network")
    head: Head = section(Head, "the task head")
    finetune: Finetune = section(Finetune, "the fine-tuning strategy")
    optimizer: Optimizer = section(Optimizer, "optimizer and schedule")
    distribute: Distribute = section(Distribute, "tf.distribute strategy")
    pretrain: Pretrain | None = section(Pretrain, "pre-training before fine-tuning", optional=True)
    distill: Distill | None = section(Distill, "distillation from a teacher", optional=True)
    export: Export = section(Export, "export targets")


# Sections that may be left out of the YAML and take all their defaults.
DEFAULTED_SECTIONS = {Data, Head, Finetune, Optimizer, Distribute, Export}
