"""Does MLM pre-training on unlabelled same-domain text help when labels are scarce?

    python bench/pretrain_mlm_labels.py            # both tasks; writes bench/results/pretrain_mlm_labels.json
    python bench/pretrain_mlm_labels.py --quick    # smoke run; writes bench/results/pretrain_mlm_labels_quick.json
    python bench/pretrain_mlm_labels.py --task reviews   # one task only

Two tasks, each with a labelled set, a larger unlabelled same-domain corpus,
and one small BERT-like encoder pre-trained on that corpus by masked language
modelling (`tfptm.pretrain.masked_lm`), saved with `save_pretrained` and
loaded back by path as a user would. For each label budget (a stratified
fraction of the labelled training pool) and seed, the pre-trained encoder and
the SAME architecture from random initialization (same vocabulary) get the
same recipes, and every score is on the same held-out test set:

- `linear_probe`: logistic regression (scikit-learn, `C` picked on
  validation) on the frozen backbone's features averaged over the real
  tokens: what the features already know;
- `finetune_lr<rate>`: every weight trains, from the backbone through a
  mean over the real tokens (the padding mask) to a softmax head; AdamW with
  10% warmup and linear decay, the backbone's blocks at layer-wise decayed
  rates (0.8 per block below the head), at most `max_epochs` epochs of
  `steps_per_epoch` batches, stopped early on validation accuracy (the best
  epoch's weights kept);
- `finetuned`: of the fine-tuning rates, the one with the better validation
  accuracy, picked separately for each backbone, budget and seed (never on
  test). This is the headline curve.

The validation set is a fixed labelled set outside the label budget, the
same for both backbones: generous to both in a scarce-label setting.

Task `docstrings` (REAL text, found on this machine): which library (NumPy,
scikit-learn, Matplotlib, Keras) a docstring summary (first paragraph) comes
from, read from the installed sources with `ast`. The unlabelled corpus is
the other paragraphs of the docstrings plus the training summaries without
labels; nothing of a validation or test docstring is in it. This task is
keyword-driven ("axes", "estimator", "array"), so a randomly initialized
model learns much of it from few labels.

Task `reviews` (GENERATED text; `tfptm.datasets.reviews`): sentiment of short
reviews whose training and test splits use DISJOINT adjectives, nouns and
templates. The unlabelled corpus is generated here too: every adjective of
both splits appears next to phrases that reveal its polarity ("i loved it,
the show was superb", "i want my money back, the show was atrocious") and
next to other adjectives of the same polarity. It tests a mechanism, and its
numbers are not a real-world accuracy: can pre-training carry knowledge that
the scarce labels lack (that a test adjective behaves like the training
ones)? A randomly initialized encoder has never had the test adjectives
trained, so it cannot beat chance on them; the pre-trained one can only by
transferring what MLM learnt. Whether it does is what the run measures.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from common import save  # noqa: E402
from docstrings import docstrings_task  # noqa: E402

TASKS = ("docstrings", "reviews")


def settings(task, quick):
    """Sizes of one task's run: about 35 minutes for both tasks on 2 idle CPU cores (`quick`: about 3)."""
    common = dict(
        fractions=[0.05, 1.0] if quick else [0.01, 0.05, 0.1, 1.0],
        seeds=[0] if quick else [0, 1, 2],
        finetune_batch_size=16,
        steps_per_epoch=20,
        max_epochs=8 if quick else 15,
        patience=3 if quick else 4,
        # More rates here widen the search (each adds a fine-tuning run per budget, seed and backbone).
        finetune_learning_rates=[1e-3] if quick else [3e-4, 1e-3],
        layerwise_decay=0.8,
        warmup_fraction=0.1,
    )
    if task == "docstrings":
        return dict(
            common,
            fractions=[0.02, 1.0] if quick else [0.02, 0.05, 0.1, 1.0],
            docstrings_per_library=500 if quick else 3000,
            test_per_class=100 if quick else 300,
            validation_per_class=25 if quick else 50,
            train_per_class=150 if quick else 900,
            # Docstrings of two more scientific libraries widen the unlabelled corpus (never labelled, never tested).
            extra_corpus_libraries=[] if quick else ["scipy", "tensorflow"],
            # Paragraphs of unlabelled text kept for pre-training (the rest is left unused, to bound the time).
            corpus_paragraphs=3000 if quick else 40000,
            vocabulary_size=2000 if quick else 6000,
            sequence_length=32,
            backbone=dict(num_layers=2, num_heads=2, hidden_dim=64 if quick else 128,
                          intermediate_dim=128 if quick else 256, dropout=0.1),
            pretrain_epochs=2 if quick else 6,
            pretrain_batch_size=64,
            pretrain_learning_rate=1e-3,
        )
    return dict(
        common,
        train_pool=320,
        validation_examples=100,
        test_examples=400,
        corpus_sentences=3000 if quick else 8000,
        vocabulary_size=400,
        sequence_length=24,
        backbone=dict(num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128, dropout=0.1),
        pretrain_epochs=4 if quick else 6,
        pretrain_batch_size=64,
        pretrain_learning_rate=2e-3,
    )


# --- task "reviews": generated text whose unlabelled corpus reveals the test adjectives' polarity ------------

#: Phrases that give away a sentence's polarity, in the generated unlabelled corpus (never in labelled reviews).
CUES = {
    "positive": ["i loved it", "five stars", "i would recommend it", "we will come back", "worth every penny",
                 "it made my day", "a real pleasure"],
    "negative": ["i want my money back", "one star", "i would not recommend it", "never again", "a waste of time",
                 "it ruined my day", "a real letdown"],
}


def review_corpus(count, seed):
    """`count` generated unlabelled sentences: a review in the templates of either split of `tfptm.datasets.reviews`,
    with an adjective of either split, next to a polarity cue and two more adjectives of the same polarity."""
    from tfptm.datasets.reviews import VOCABULARY

    rng = np.random.default_rng(seed)
    pick = lambda items: items[rng.integers(len(items))]  # noqa: E731
    nouns = [n for split in VOCABULARY.values() for n in split["nouns"]]
    templates = [t for split in VOCABULARY.values() for t in split["templates"]]
    sentences = []
    for i in range(count):
        polarity = ("negative", "positive")[i % 2]
        adjectives = [a for split in VOCABULARY.values() for a in split[polarity]]
        review = pick(templates).format(noun=pick(nouns), adj=pick(adjectives))
        cue, pair = pick(CUES[polarity]), f"{pick(adjectives)} and {pick(adjectives)}"
        sentences.append(f"{cue}, {review}, {pair}" if i % 4 < 2 else f"{review}, {pair}, {cue}")
    return sentences


def reviews_task(config, rng):
    """`(corpus, train, validation, test, info)`: labelled reviews of `tfptm.datasets.reviews` and a generated corpus.
    Validation reviews come from the training split (its adjectives), as a user's own held-out labels would."""
    from tfptm.datasets.reviews import load_reviews

    seed = int(rng.integers(1000))
    texts, labels = load_reviews("train", config["train_pool"] + config["validation_examples"], seed=seed)
    cut = config["train_pool"]
    train, validation = (texts[:cut], labels[:cut]), (texts[cut:], labels[cut:])
    test = load_reviews("test", config["test_examples"], seed=seed + 1)
    corpus = review_corpus(config["corpus_sentences"], seed + 2)
    info = {"description": "sentiment of GENERATED reviews; train/test splits use disjoint adjectives (tfptm.datasets.reviews); "
                           "the unlabelled corpus is GENERATED so that every adjective of both splits appears next to "
                           "phrases revealing its polarity: it tests the mechanism, not a real-world accuracy",
            "classes": ["negative", "positive"], "corpus_documents": len(corpus), "corpus_example": corpus[:4]}
    return corpus, train, validation, test, info


# --- the experiment, the same for both tasks ---------------------------------------------------------------


def label_budget(y, fraction, seed):
    """Indices of a stratified `fraction` of the examples (at least one per class)."""
    rng = np.random.default_rng(1000 + seed)
    chosen = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        chosen += rng.choice(idx, size=max(1, int(round(fraction * len(idx)))), replace=False).tolist()
    return np.sort(np.array(chosen))


def classifier(backbone, num_classes, learning_rate, config):
    """Backbone, mean of its features over the real tokens (`padding_mask`), softmax head; compiled with AdamW,
    warmup and linear decay over the longest run, the backbone's blocks at layer-wise decayed rates."""
    import keras

    import tfptm
    from tfptm.backbones.registry import BACKBONE_NAME

    backbone.name = BACKBONE_NAME  # where tfptm.training looks for it
    inputs = {name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=name) for name, t in backbone.input.items()}
    head = tfptm.Head("multiclass", num_classes=num_classes, dropout=0.1)
    model = keras.Model(inputs, head(masked_mean(backbone(inputs), inputs["padding_mask"])))
    model.compile(loss=head.loss(), metrics=head.metrics(), optimizer=tfptm.training.optimizer(
        "adamw", learning_rate, warmup_fraction=config["warmup_fraction"], decay="linear",
        total_steps=config["max_epochs"] * config["steps_per_epoch"],
        lr_multipliers=tfptm.training.layerwise_lr_decay(model, config["layerwise_decay"])))
    return model


def masked_mean(features, padding_mask):
    """Mean of `(batch, steps, dim)` features over the positions where `padding_mask` is true."""
    from keras import ops

    mask = ops.expand_dims(ops.cast(padding_mask, features.dtype), -1)
    return ops.sum(features * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


def linear_probe(features, budget, validation, test):
    """Logistic regression on frozen, standardized features, its `C` picked on validation: `(scores, C)`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    for c in (0.01, 0.1, 1.0, 10.0):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(
            features["train"][budget], features["train_labels"][budget])
        scores = {"validation": float(probe.score(features["validation"], validation[1])),
                  "test": float(probe.score(features["test"], test[1])), "C": c}
        if best is None or scores["validation"] > best["validation"]:
            best = scores
    return best


def pooled_features(backbone, train_tokens, train_labels, validation, test):
    """Masked-mean features of the frozen backbone for every split (computed once per backbone)."""
    import tfptm

    def features(tokens):
        unpooled = tfptm.evaluation.extract_features(backbone, tokens, pooling="none")
        return np.asarray(masked_mean(unpooled, tokens["padding_mask"]))

    return {"train": features(train_tokens), "train_labels": train_labels,
            "validation": features(validation[0]), "test": features(test[0])}


def run_recipes(make_backbone, features, budget, train, validation, test, num_classes, config, seed):
    """`{recipe: {"validation": accuracy, "test": accuracy, ...}}` for one backbone and label budget.

    Each fine-tuning run takes at most `max_epochs` epochs of `steps_per_epoch` batches (the labelled examples
    reshuffled and repeated, so tiny budgets get as many updates as large ones) and keeps its best epoch by
    validation accuracy."""
    import keras
    import tensorflow as tf

    import tfptm

    (x, y), steps = train, config["steps_per_epoch"]
    data = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
            .repeat().batch(config["finetune_batch_size"]).take(steps))
    validation_data = tf.data.Dataset.from_tensor_slices(validation).batch(256)

    def accuracy(model, split):
        return float((model.predict(split[0], batch_size=256, verbose=0).argmax(-1) == split[1]).mean())

    results = {"linear_probe": linear_probe(features, budget, validation, test)}
    for learning_rate in config["finetune_learning_rates"]:
        keras.utils.set_random_seed(100 + seed)
        model = classifier(make_backbone(), num_classes, learning_rate, config)
        stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config["patience"],
                                             restore_best_weights=True)
        history = tfptm.finetune(model, data, tfptm.training.full(config["max_epochs"], learning_rate),
                                 validation_data=validation_data, callbacks=[stop], verbose=0)
        results[f"finetune_lr{learning_rate:g}"] = {
            "validation": accuracy(model, validation), "test": accuracy(model, test), "epochs": len(history["stage"])}
    best = max((r for r in results if r.startswith("finetune_")), key=lambda r: results[r]["validation"])
    results["finetuned"] = {**results[best], "chosen": best}
    return results


def summarize(runs, fractions):
    """Mean and spread of test accuracy over seeds, for each label budget: one point of the curve each."""
    points = []
    for fraction in fractions:
        at = [r for r in runs if r["fraction"] == fraction]
        accuracies = [r["test"] for r in at]
        points.append({"fraction": fraction, "labels": at[0]["labels"], "mean_accuracy": round(float(np.mean(accuracies)), 4),
                       "std_accuracy": round(float(np.std(accuracies)), 4), "seeds": len(at)})
    return points


def run_task(task, quick):
    """Pre-trains on the task's corpus, then fine-tunes both backbones at every label budget; the task's results."""
    import keras

    import tfptm
    import tfptm.pretrain  # noqa: F401  (until tfptm/__init__.py lists it)

    config = settings(task, quick)
    started = time.monotonic()
    build = docstrings_task if task == "docstrings" else reviews_task
    corpus, train, validation, test, info = build(config, np.random.default_rng(0))
    num_classes = len(info["classes"])
    info.update(train_pool=int(len(train[1])), validation_examples=int(len(validation[1])),
                test_examples=int(len(test[1])), chance_accuracy=1 / num_classes)
    print(f"[{task}] {len(train[1])} labelled training, {len(validation[1])} validation, {len(test[1])} test examples; "
          f"unlabelled corpus of {len(corpus)} documents ({time.monotonic() - started:.0f} s)", flush=True)

    keras.utils.set_random_seed(0)
    pretrain_started = time.monotonic()
    result = tfptm.pretrain.masked_lm(
        corpus, vocabulary_size=config["vocabulary_size"], sequence_length=config["sequence_length"],
        epochs=config["pretrain_epochs"], batch_size=config["pretrain_batch_size"],
        learning_rate=config["pretrain_learning_rate"], validation_fraction=0.05, **config["backbone"])
    pretrain_seconds = time.monotonic() - pretrain_started
    print(f"[{task}] MLM pre-training: {pretrain_seconds:.0f} s, masked-token loss {result.history['loss'][0]:.2f} -> "
          f"{result.history['loss'][-1]:.2f}, held-out masked-token accuracy {result.metrics['validation_accuracy']:.3f}",
          flush=True)
    artifact = os.path.join(tempfile.mkdtemp(), "mlm")
    tfptm.pretrain.save_pretrained(artifact, result)
    _, tokenizer = tfptm.backbones.saved.load_artifact(artifact)
    vocabulary_size = len(tokenizer.vocabulary)
    makers = {
        "pretrained": lambda: tfptm.backbones.get(artifact),
        "random_init": lambda: tfptm.backbones.get("transformer_encoder", vocabulary_size=vocabulary_size,
                                                   max_sequence_length=config["sequence_length"], **config["backbone"]),
    }
    assert makers["pretrained"]().count_params() == makers["random_init"]().count_params()

    def tokens(texts):
        return {k: v.numpy() for k, v in tokenizer(texts).items()}

    train_tokens = tokens(train[0])
    validation, test = (tokens(validation[0]), validation[1]), (tokens(test[0]), test[1])
    runs = {}
    for seed in config["seeds"]:
        for name, make in makers.items():
            keras.utils.set_random_seed(100 + seed)  # the initialization that fine-tuning starts from, too
            features = pooled_features(make(), train_tokens, train[1], validation, test)
            for fraction in config["fractions"]:
                chosen = label_budget(train[1], fraction, seed)
                budget = ({k: v[chosen] for k, v in train_tokens.items()}, train[1][chosen])
                results = run_recipes(make, features, chosen, budget, validation, test, num_classes, config, seed)
                for recipe, scores in results.items():
                    runs.setdefault(recipe, {n: [] for n in makers})[name].append(
                        {"fraction": fraction, "labels": int(len(chosen)), "seed": seed, **scores})
                print(f"[{task}] {name:<12} {len(chosen):>5} labels ({100 * fraction:g}%) seed {seed}: test accuracy "
                      + ", ".join(f"{r} {s['test']:.3f}" for r, s in results.items())
                      + f" (chose {results['finetuned']['chosen']}) [{time.monotonic() - started:.0f} s]", flush=True)
    summary = {recipe: {name: summarize(r, config["fractions"]) for name, r in by_init.items()}
               for recipe, by_init in runs.items()}
    return {"config": config, "task": info, "summary": summary, "runs": runs,
            "pretraining": {"seconds": round(pretrain_seconds, 1), "history": dict(result.history),
                            "metrics": result.metrics, "vocabulary_size": vocabulary_size},
            "seconds": round(time.monotonic() - started, 1)}


def table(task, result):
    """The curves as text: test accuracy (mean +- std over seeds) against labels, pre-trained vs random init."""
    lines = [f"\n{task}: test accuracy, mean +- std over {len(result['config']['seeds'])} seeds "
             f"(chance {result['task']['chance_accuracy']:.2f})",
             f"{'labels':>7} {'%':>5} | " + " | ".join(f"{r:^29}" for r in ("finetuned", "linear_probe")),
             f"{'':>7} {'':>5} | " + " | ".join(f"{'pre-trained':>14} {'random init':>14}" for _ in range(2))]
    summary = result["summary"]
    for i, point in enumerate(summary["finetuned"]["pretrained"]):
        cells = []
        for recipe in ("finetuned", "linear_probe"):
            cells.append(" ".join(f"{p['mean_accuracy']:.3f} +- {p['std_accuracy']:.3f}" for p in
                                  (summary[recipe]["pretrained"][i], summary[recipe]["random_init"][i])))
        lines.append(f"{point['labels']:>7} {100 * point['fraction']:>5g} | " + " | ".join(cells))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (about 2 minutes)")
    parser.add_argument("--task", choices=(*TASKS, "both"), default="both", help="which task to run (default: both)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    tasks = TASKS if args.task == "both" else (args.task,)
    results = {task: run_task(task, args.quick) for task in tasks}
    for task, result in results.items():
        print(table(task, result))
    name = "pretrain_mlm_labels" + ("_quick" if args.quick else "") + ("" if args.task == "both" else f"_{args.task}")
    results["seconds"] = round(time.monotonic() - started, 1)
    path = save(name, {"quick": args.quick, "tasks": list(tasks),
                       "question": "Does MLM pre-training on unlabelled same-domain text beat random init "
                                   "when labels are scarce?"}, results)
    print(f"saved {path} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
