"""`lm-eval-mlc`: lm-eval's CLI with this plugin loaded, plus plugin-specific subcommands.

lm-eval-mlc run --tasks goemotions_ml --limit 20       # embedded SmolLM2, hf-mlc
lm-eval-mlc run --model hf --model_args pretrained=... --tasks goemotions_ml_full
lm-eval-mlc tasks-dir                                   # for --include_path elsewhere
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lm_eval_mlc._paths import TASKS_DIR

EMBEDDED_MODELS = {"hf-mlc", "hf", "hf-auto", "huggingface"}


def _has_option(argv: Sequence[str], name: str) -> bool:
    return any(arg == name or arg.startswith(name + "=") for arg in argv)


def _option_value(argv: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def run_argv(argv: Sequence[str]) -> list[str]:
    """`lm_eval run` arguments with our defaults: `hf-mlc` and the embedded SmolLM2.

    The embedded model is instruction-tuned, so it also gets its chat template unless the
    caller set `--apply_chat_template` themselves.
    """
    from lm_eval_mlc.default_model import default_model_args

    args = list(argv)
    if not _has_option(args, "--model"):
        args += ["--model", "hf-mlc"]
    model = _option_value(args, "--model")
    if model in EMBEDDED_MODELS and not _has_option(args, "--model_args"):
        args += ["--model_args", default_model_args()]
        if not _has_option(args, "--apply_chat_template"):
            args += ["--apply_chat_template"]
    return ["run", *args]


def run(argv: Sequence[str]) -> None:
    """Run `lm_eval run` in this process with the plugin loaded."""
    from lm_eval import __main__ as lm_eval_main

    from lm_eval_mlc.data import DataValidationError
    from lm_eval_mlc.plugin import activate

    activate()
    sys.argv = ["lm-eval-mlc", *run_argv(argv)]
    try:
        lm_eval_main.cli_evaluate()
    except DataValidationError as err:
        sys.exit(f"lm-eval-mlc: error: {err}")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="lm-eval-mlc",
        description="Multi-label classification evaluation on top of lm-evaluation-harness.",
        epilog="examples:\n"
        "  lm-eval-mlc run --tasks goemotions_ml --limit 20\n"
        "  lm-eval-mlc run --model hf --model_args pretrained=gpt2 --tasks goemotions_ml_full\n"
        "  lm_eval --include_path $(lm-eval-mlc tasks-dir) --tasks goemotions_ml ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser(
        "run",
        help="lm_eval run with the plugin loaded; defaults to hf-mlc on the embedded SmolLM2",
        add_help=False,
    )
    sub.add_parser("tasks-dir", help="print the folder holding this plugin's task YAMLs")
    rules = sub.add_parser(
        "rules",
        help="fit the uncertainty decision rules on a validation run, report them on a test run",
        description="Fit prob/entropy/logtoku thresholds on VALIDATION (an hf-mlc run with "
        '--metadata \'{"eval_split": "validation"}\' --log_samples) and apply them to TEST.',
    )
    rules.add_argument("--validation", required=True, help="output folder of the validation run")
    rules.add_argument("--test", required=True, help="output folder of the test run")
    rules.add_argument("--task", default="goemotions_ml")
    rules.add_argument("--output", help="write the report as JSON here (atomically)")
    if argv[:1] == ["run"]:
        run(argv[1:])
        return
    args = parser.parse_args(argv)
    if args.command == "tasks-dir":
        print(TASKS_DIR)
    elif args.command == "rules":
        _rules(args)


def _rules(args: argparse.Namespace) -> None:
    import json

    from lm_eval_mlc.rules_report import fit_and_report
    from lm_eval_mlc.runs import load_samples

    try:
        report = fit_and_report(
            load_samples(args.validation, args.task), load_samples(args.test, args.task)
        )
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"lm-eval-mlc rules: error: {err}")
    print(f"{'rule':<9}{'threshold':>10}{'micro_f1':>10}{'macro_f1':>10}{'2-label':>9}")
    for rule, row in report.items():
        print(
            f"{rule:<9}{row['threshold']:>10.4g}{row['micro_f1']:>10.4f}"
            f"{row['macro_f1']:>10.4f}{row['two_label_rate']:>9.2f}"
        )
    if args.output:
        _write_atomic(args.output, json.dumps(report, indent=2))


def _write_atomic(path: str, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
