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
    if argv[:1] == ["run"]:
        run(argv[1:])
        return
    args = parser.parse_args(argv)
    if args.command == "tasks-dir":
        print(TASKS_DIR)


if __name__ == "__main__":
    main()
