"""Reading, overriding, validating and writing recipes; every problem is one `TfptmError` line.

Messages name the file, the key path and what was expected:
`recipe.yaml: finetune.epochs: expected a positive integer, got 'ten'`.

Example:
>>> recipe = validate({"backbone": {"name": "vgg_cnn"}, "finetune": {"epochs": 3}})
>>> recipe.finetune.epochs, recipe.head.task
(3, 'multiclass')
>>> try:
...     validate({"backbone": {"name": "vgg_cnn"}, "finetune": {"epoch": 3}}, source="r.yaml")
... except TfptmError as error:
...     print(error)
r.yaml: finetune.epoch: unknown key; did you mean 'epochs'?
"""

import dataclasses
import difflib
import os

import yaml

from tfptm.errors import TfptmError, one_line
from tfptm.recipes import checks as c
from tfptm.recipes import schema as s




def load_recipe(path, sets=()):
    """Reads a recipe file, applies `--set` overrides (`"a.b=value"` strings) and validates it.

    Example:
    >>> from tfptm.recipes.bundled import bundled_path
    >>> load_recipe(bundled_path("image_transfer"), sets=["finetune.epochs=2"]).finetune.epochs
    2
    """
    source = os.fspath(path)
    if os.path.isdir(source):
        raise TfptmError(f"{source}: is a directory; expected a recipe YAML file (see `tfptm recipes`)")
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise TfptmError(f"{source}: recipe file does not exist; expected a YAML file (see `tfptm recipes`)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TfptmError(f"{source}: cannot read the recipe: {one_line(error)}") from None
    return parse_recipe(text, source=source, sets=sets)


def parse_recipe(text, source="recipe.yaml", sets=()):
    """Validates a recipe given as YAML text; `source` names it in messages.

    Example:
    >>> parse_recipe("backbone: {name: vgg_cnn}", sets=["head.dropout=0.1"]).head.dropout
    0.1
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise TfptmError(f"{source}: not valid YAML{line}: {getattr(error, 'problem', None) or one_line(error)}") from None
    except RecursionError:
        raise TfptmError(f"{source}: YAML nested too deeply; expected a mapping of recipe sections") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise TfptmError(f"{source}: expected a mapping of recipe sections (data, backbone, ...), got {c.show(raw)}")
    overridden = apply_sets(raw, sets)
    return validate(raw, source=source, overridden=overridden)


def parse_set(text):
    """Splits `"a.b=value"` into the key path and the value read with YAML's scalar rules.

    Example:
    >>> parse_set("finetune.epochs=3"), parse_set("export.tflite=[dynamic, int8]")
    ((('finetune', 'epochs'), 3), (('export', 'tflite'), ['dynamic', 'int8']))
    """
    key, sep, value = str(text).partition("=")
    parts = tuple(key.strip().split("."))
    if not sep or not all(parts):
        raise TfptmError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. --set finetune.epochs=3")
    try:
        return parts, yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise TfptmError(f"--set {text!r}: the value is not valid YAML: {getattr(error, 'problem', None) or one_line(error)}") from None


def apply_sets(raw, sets):
    """Applies `--set` overrides to a raw recipe dict in place; returns the dotted paths set.

    Paths are checked against the schema first, so a typo is an error, not a new key.
    An optional section (`pretrain`, `distill`) can be dropped: `pretrain=null`.

    Example:
    >>> raw = {"backbone": {"name": "vgg_cnn"}, "pretrain": {"objective": "supervised"}}
    >>> sorted(apply_sets(raw, ["pretrain=null", "finetune.epochs=2"])), raw["pretrain"]
    (['finetune.epochs', 'pretrain'], None)
    """
    overridden = set()
    for text in sets:
        parts, value = parse_set(text)
        _check_path(parts, text, value)
        node = raw
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
        overridden.add(".".join(parts))
    return overridden


def _check_path(parts, text, value=None):
    text = text if text.isprintable() else repr(text)
    if len(parts) == 1 and value is None and _is_optional_section(parts[0]):
        return  # `--set pretrain=null` drops an optional section
    cls = s.Recipe
    for depth, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        where = ".".join(parts[:depth]) or "the recipe"
        if part not in fields:
            raise TfptmError(f"--set {text}: unknown key {part!r} in {where}{_did_you_mean(part, fields)}")
        meta = fields[part].metadata
        if meta["section"] is not None:
            cls = meta["section"]
            continue
        if depth == len(parts) - 1 or (meta["check"] is c.keyword_arguments and depth == len(parts) - 2):
            return
        raise TfptmError(f"--set {text}: {'.'.join(parts[: depth + 1])} is a value, not a section")
    raise TfptmError(f"--set {text}: {'.'.join(parts)} is a section; set one of its keys, e.g. {'.'.join(parts)}.{dataclasses.fields(cls)[0].name}")


def _is_optional_section(name):
    found = [f for f in dataclasses.fields(s.Recipe) if f.name == name]
    return bool(found) and bool(found[0].metadata.get("optional"))


def _did_you_mean(key, options):
    close = difflib.get_close_matches(str(key), list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(options)}"


def validate(raw, source="recipe.yaml", overridden=()):
    """Turns a raw recipe dict into a `Recipe`, or raises `TfptmError` naming `source` and the key path."""
    if not isinstance(raw, dict):
        raise TfptmError(f"{source}: expected a mapping of recipe sections, got {c.show(raw)}")
    recipe = _section(s.Recipe, raw, (), source, set(overridden))
    _cross_checks(recipe, source)
    return recipe


def _error(source, path, message, overridden=()):
    where = ".".join(path)
    note = " (from --set)" if where in overridden else ""
    return TfptmError(f"{source}: {where}{note}: {message}")


def _section(cls, raw, path, source, overridden):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            label = key if isinstance(key, str) and key.isprintable() and key.strip() == key != "" else c.show(key)
            raise _error(source, path + (label,), f"unknown key{_did_you_mean(key, fields)}")
    values = {}
    for name, f in fields.items():
        here = path + (name,)
        meta = f.metadata
        if meta["section"] is not None:
            value = raw.get(name)
            if value is None and (meta["optional"] or name not in raw):
                if meta["optional"]:
                    values[name] = None
                    continue
                if meta["section"] not in s.DEFAULTED_SECTIONS:
                    raise _error(source, here, f"missing; expected a section: {meta['doc']}")
                value = {}
            if not isinstance(value, dict):
                raise _error(source, here, f"expected a mapping ({meta['doc']}), got {c.show(value)}", overridden)
            values[name] = _section(meta["section"], value, here, source, overridden)
        elif name in raw:
            try:
                values[name] = meta["check"](raw[name])
            except c.Invalid as invalid:
                hint = f"; {invalid.hint}" if invalid.hint else ""
                message = f"expected {invalid.expected}, got {c.show(raw[name])}{hint}"
                raise _error(source, here, message, overridden) from None
        elif f.default is s.REQUIRED:
            raise _error(source, here, f"missing; expected {meta['check'].expected}: {meta['doc']}")
    return cls(**values)


def _cross_checks(recipe, source):
    """Combinations that are each valid alone but impossible together."""

    def fail(path, message):
        raise TfptmError(f"{source}: {path}: {message}")

    _check_data(recipe.data, "data", fail)
    if recipe.data.source in s.CORPUS_SOURCES:
        fail("data.source", f"source {recipe.data.source!r} holds unlabelled documents, for pretrain.data with "
             "objective mlm or causal_lm; expected labelled data (csv, jsonl, ...)")
    head, tune, export = recipe.head, recipe.finetune, recipe.export
    _check_pairs(recipe, fail)
    _check_token_tasks(recipe, fail)
    if head.task in ("multiclass", "multilabel") and head.num_classes == 1:
        fail("head.num_classes", f"task {head.task!r} needs num_classes >= 2, got 1 (use task 'binary' for one output)")
    if head.task == "binary" and head.num_classes not in (None, 1, 2):
        fail("head.num_classes", f"task 'binary' has one output (2 classes), got num_classes {head.num_classes}")
    if head.num_classes and recipe.data.classes and head.task == "multiclass" and head.num_classes != len(recipe.data.classes):
        fail("head.num_classes", f"data.classes lists {len(recipe.data.classes)} classes, got num_classes {head.num_classes}")
    if tune.strategy == "partial" and tune.top_blocks is None:
        fail("finetune.top_blocks", "strategy 'partial' needs top_blocks, the number of backbone blocks that train; got null")
    if tune.strategy == "two_stage" and tune.head_epochs is None:
        fail("finetune.head_epochs", "strategy 'two_stage' needs head_epochs, the epochs training the head alone; got null")
    if tune.monitor and tune.monitor.startswith("val_") and not recipe.data.validation_fraction:
        fail("finetune.monitor", f"{tune.monitor!r} needs validation data; expected data.validation_fraction > 0 "
             "(or a training metric such as 'loss')")
    if "int8" in export.tflite and export.representative_data is None:
        fail("export.representative_data", "int8 TFLite needs a representative data source ('train' or 'test'); got null")
    if export.int8_io and "int8" not in export.tflite:
        fail("export.int8_io", "int8_io needs 'int8' in export.tflite")
    if head.task in ("multilabel", "regression") and recipe.data.source not in s.TABLE_SOURCES:
        fail("head.task", f"task {head.task!r} reads lists of labels or numbers from a csv or jsonl table; "
             f"data.source {recipe.data.source!r} holds class labels, expected csv or jsonl")
    if head.task == "regression" and tune.monitor and "accuracy" in tune.monitor:
        fail("finetune.monitor", f"{tune.monitor!r} is not a metric of a regression head; expected e.g. val_loss or val_mae")
    if head.task == "regression" and head.label_smoothing:
        fail("head.label_smoothing", f"label smoothing is for classification; task 'regression' expects 0, got {head.label_smoothing}")
    if recipe.pretrain is not None:
        _check_data(recipe.pretrain.data, "pretrain.data", fail)
        if recipe.pretrain.objective in ("mlm", "causal_lm") and recipe.pretrain.data.source not in s.TEXT_SOURCES:
            fail(
                "pretrain.data.source",
                f"objective {recipe.pretrain.objective!r} needs a text source ({', '.join(s.TEXT_SOURCES)}), "
                f"got {recipe.pretrain.data.source!r}",
            )
        if recipe.pretrain.objective == "supervised" and recipe.pretrain.data.source in s.CORPUS_SOURCES:
            fail("pretrain.data.source", f"objective 'supervised' needs labelled data; source "
                 f"{recipe.pretrain.data.source!r} holds unlabelled documents (for mlm or causal_lm)")


def _check_pairs(recipe, fail):
    """Text pairs (data.text_pair_column) and sentence-embedding recipes (head.task embedding)."""
    data, head, tune = recipe.data, recipe.head, recipe.finetune
    embedding = head.task == s.EMBEDDING
    if data.text_pair_column is not None or embedding:
        if data.source not in s.TABLE_SOURCES:
            what = "task 'embedding'" if embedding else "text_pair_column"
            fail("data.source", f"{what} reads text pairs from a csv or jsonl table; expected source csv or jsonl, "
                 f"got {data.source!r}")
    if data.text_pair_column is not None and data.text_pair_column == data.text_column:
        fail("data.text_pair_column", f"expected a column other than text_column, got {data.text_pair_column!r} for both")
    if data.negative_column is not None and not embedding:
        fail("data.negative_column", "hard negatives are for head.task 'embedding'; expected null, "
             f"got {data.negative_column!r} with task {head.task!r}")
    if data.negative_column is not None and data.negative_column in (data.text_column, data.text_pair_column):
        fail("data.negative_column", f"expected a column other than text_column and text_pair_column, "
             f"got {data.negative_column!r}")
    if data.text_pair_column is not None and head.task in ("multilabel", "regression"):
        fail("head.task", f"text pairs have one class label each; expected task multiclass or binary, got {head.task!r}")
    if not embedding:
        return
    if data.text_pair_column is None:
        fail("data.text_pair_column", "task 'embedding' trains on (text, positive) rows; expected the positive "
             "text's column, got null")
    if head.pooling not in s.EMBEDDING_POOLINGS:
        fail("head.pooling", f"task 'embedding' pools by {' or '.join(map(repr, s.EMBEDDING_POOLINGS))}, "
             f"got {head.pooling!r}")
    if tune.strategy not in s.EMBEDDING_STRATEGIES:
        fail("finetune.strategy", "task 'embedding' fine-tunes every weight contrastively ('full') or none "
             f"('feature_extraction': the checkpoint as it is); got {tune.strategy!r}")
    if recipe.optimizer.name not in ("adam", "adamw"):
        fail("optimizer.name", f"task 'embedding' trains with AdamW (sentence-transformers' schedule); expected "
             f"'adamw' or 'adam', got {recipe.optimizer.name!r}")
    for section in ("pretrain", "distill"):
        if getattr(recipe, section) is not None:
            fail(section, f"task 'embedding' has no {section} step yet; expected no {section} section")


def _check_token_tasks(recipe, fail):
    """Token classification (conll or jsonl words and tags) and question answering (squad) recipes."""
    data, head = recipe.data, recipe.head
    sources = s.TOKEN_TASK_SOURCES.get(head.task)
    if sources is None:
        if data.source in ("conll", "squad"):
            wanted = s.TOKEN_CLASSIFICATION if data.source == "conll" else s.QUESTION_ANSWERING
            fail("head.task", f"data.source {data.source!r} holds {'tagged words' if data.source == 'conll' else 'questions and answers'}; "
                 f"expected head.task {wanted!r}, got {head.task!r}")
        return
    if data.source not in sources:
        fail("data.source", f"task {head.task!r} reads {' or '.join(sources)} files; got {data.source!r}")
    if data.text_pair_column is not None:
        fail("data.text_pair_column", f"task {head.task!r} reads its own file layout; expected null")
    if recipe.pretrain is not None:
        fail("pretrain", f"task {head.task!r} fine-tunes a pre-trained checkpoint; expected no pretrain section "
             "(pre-train with another recipe, then use its RUN/pretrained as backbone.name)")
    if recipe.distill is not None and head.task == s.QUESTION_ANSWERING:
        fail("distill", "task 'question_answering' has no distillation yet; expected no distill section")


def _check_data(data, where, fail):
    if data.source in s.PATH_SOURCES and data.path is None:
        fail(f"{where}.path", f"source {data.source!r} needs path ({s.PATH_SOURCES[data.source]}); got null")
    if data.source == "tfds" and data.name is None:
        fail(f"{where}.name", "source 'tfds' needs name, a TFDS data set name such as 'imdb_reviews'; got null")
    if data.source == "digits" and data.classes and max(data.classes) > 9:
        fail(f"{where}.classes", f"the digits have classes 0-9, got {list(data.classes)}")
    if data.classes is not None and len(data.classes) < 2:
        fail(f"{where}.classes", f"expected at least 2 classes, got {list(data.classes)}")
    for key in ("shots", "classes"):
        if getattr(data, key) is not None and data.source not in s.ARRAY_SOURCES:
            fail(f"{where}.{key}", f"{key} needs an in-memory source ({', '.join(s.ARRAY_SOURCES)}), got source {data.source!r}")
    if data.source == "image_folder" and data.image_size is None:
        fail(f"{where}.image_size", "source 'image_folder' needs image_size, the [height, width] images are resized to; got null")
    if data.augment and data.source not in s.IMAGE_SOURCES:
        fail(f"{where}.augment", f"augment works on images ({', '.join(s.IMAGE_SOURCES)}), got source {data.source!r}")
    if data.test_fraction + data.validation_fraction >= 1:
        fail(f"{where}.validation_fraction", "test_fraction + validation_fraction must leave examples to train on")


def check_sources(recipe, source="recipe.yaml", files=True):
    """Resolves a recipe's files and hub handles before TensorFlow loads; returns one line per value checked.

    A file or directory that does not exist is an error (with `files`); an
    `hf://` or `kaggle://` handle is reported as cached or "will download",
    and offline (`TFPTM_OFFLINE=1`, `HF_HUB_OFFLINE=1`) as an error when not
    cached. Names and URLs (registered backbones, KerasHub presets, TF Hub)
    are resolved when the run starts.

    Example (offline, as the examples run; online the line reads
    `'backbone.name: hf://org/model: will download into <cache>'`):
    >>> recipe = validate({"backbone": {"name": "hf://org/model"}})
    >>> check_sources(recipe)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: recipe.yaml: backbone.name: 'hf://org/model' is not in the cache ... and downloads are off (TFPTM_OFFLINE=1); ...
    """
    from tfptm import downloads

    values = [("backbone.name", recipe.backbone.name, "backbone")]
    for where, data in (("data", recipe.data), ("pretrain.data", recipe.pretrain and recipe.pretrain.data)):
        if data is not None and data.source != "tfds":
            values += [(f"{where}.path", data.path, "file"), (f"{where}.test_path", data.test_path, "file")]
    if recipe.distill is not None:
        values.append(("distill.teacher", recipe.distill.teacher, "file"))
    lines = []
    for key, value, kind in values:
        if value is None:
            continue
        try:
            status = downloads.handle_status(value) if kind == "backbone" else None
        except TfptmError as error:
            raise TfptmError(f"{source}: {key}: {error}") from None
        if status is None and "://" in value:
            status = "a URL, downloaded when the run starts"
        elif status is None and (kind == "file" or _looks_like_path(value)):
            if files and not os.path.exists(value):
                raise TfptmError(f"{source}: {key}: {value!r} does not exist; expected an existing file or directory")
            status = "exists" if os.path.exists(value) else "not checked"
        elif status is None:
            status = "a name, resolved when the run starts (registered backbone or KerasHub preset)"
        lines.append(f"{key}: {value}: {status}")
    return lines


def _looks_like_path(name):
    return "/" in name or os.sep in name or name.startswith(".") or name.endswith((".keras", ".gz", ".tgz", ".tar"))


def to_dict(recipe):
    """A recipe as plain YAML-ready dicts and lists, every default filled in.

    Example:
    >>> to_dict(validate({"backbone": {"name": "vgg_cnn"}}))["finetune"]["epochs"]
    10
    """
    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(recipe))


def dump_recipe(recipe, origin=None):
    """The resolved recipe as YAML text; reading it back gives an equal `Recipe`.

    Example:
    >>> recipe = validate({"backbone": {"name": "vgg_cnn"}})
    >>> parse_recipe(dump_recipe(recipe)) == recipe
    True
    """
    header = "# Resolved recipe: every default filled in. Run it again with: tfptm train recipe.yaml\n"
    if origin:
        header += f"# From: {origin}\n"
    return header + yaml.dump(to_dict(recipe), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


class _Dumper(yaml.SafeDumper):
    """Block-style sections with short lists on one line: `classes: [5, 6, 7]`."""


_Dumper.add_representer(list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True))


def __getattr__(name):  # names that moved away keep working for one release (tfptm/_moved.py)
    from tfptm._moved import module_getattr

    return module_getattr('tfptm.recipes.validate', name)
