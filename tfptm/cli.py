"""The `tfptm` command: argument parsing and printing only (floor 6).

TensorFlow is imported inside the verb handlers, so `tfptm --help` and
`tfptm VERB --help` answer at once.
"""

import argparse
import os
import sys

from tfptm.errors import TfptmError

EXAMPLES = {
    "quickstart": "tfptm quickstart --out runs/quickstart --export-dir export",
}


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _quickstart(args):
    _quiet_tensorflow()
    import dataclasses

    from tfptm.recipes.quickstart import QuickstartConfig, format_table, run_quickstart

    overrides = {
        key: value
        for key, value in {
            "shots": args.shots,
            "source_epochs": args.source_epochs,
            "head_epochs": args.head_epochs,
            "finetune_epochs": args.finetune_epochs,
            "scratch_epochs": args.scratch_epochs,
            "seed": args.seed,
        }.items()
        if value is not None
    }
    config = dataclasses.replace(QuickstartConfig(), **overrides)
    summary = run_quickstart(args.out, args.export_dir, config, verbose=1 if args.verbose else 0)
    print(format_table(summary))
    parity_ok = all(check["ok"] for check in summary["parity"].values())
    if not parity_ok:
        print("tfptm: error: an exported artifact does not match the Keras model (see summary.json)", file=sys.stderr)
        return 1
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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
        help="transfer learning on the bundled digits, end to end, with export and parity checks",
        description="Pre-train a small CNN on digits 0-4, fine-tune it on digits 5-9 from a few labels, compare "
        "with training from scratch, export SavedModel (TF Serving layout) and TFLite, check both against Keras, "
        "and write summary.json. Runs offline in under 3 minutes on 2 CPU cores.",
        epilog=f"example: {EXAMPLES['quickstart']}",
    )
    quickstart.add_argument("--out", metavar="DIR", help="run directory (default: runs/quickstart-TIMESTAMP)")
    quickstart.add_argument("--export-dir", metavar="DIR", default="export", help="export base (default: export)")
    quickstart.add_argument("--shots", type=_positive_int, help="labelled target images per class (default: 10)")
    quickstart.add_argument("--source-epochs", type=_positive_int, help="pre-training epochs on digits 0-4")
    quickstart.add_argument("--head-epochs", type=_positive_int, help="epochs training the head on a frozen backbone")
    quickstart.add_argument("--finetune-epochs", type=_positive_int, help="epochs fine-tuning the unfrozen backbone")
    quickstart.add_argument("--scratch-epochs", type=_positive_int, help="epochs for the from-scratch baseline")
    quickstart.add_argument("--seed", type=int, help="random seed (default: 0)")
    quickstart.add_argument("--verbose", action="store_true", help="show Keras progress bars for every epoch")
    quickstart.set_defaults(handler=_quickstart)
    return parser


def _version():
    from tfptm import __version__

    return __version__


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TfptmError as error:
        print(f"tfptm: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("tfptm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
