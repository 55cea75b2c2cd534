"""`lm-eval-mlc`: lm-eval's CLI with this plugin loaded, plus plugin-specific subcommands.

lm-eval-mlc run --tasks goemotions_ml --limit 20       # embedded SmolLM2, hf-mlc
lm-eval-mlc run --model hf --model_args pretrained=... --tasks goemotions_ml_full
lm-eval-mlc tasks-dir                                   # for --include_path elsewhere
lm-eval-mlc show out/                                   # a row per strategy, with intervals

One module per subcommand (`run` also holds `tasks-dir`), each with `add_parser(sub)` and
`handle(args)`; `_errors.expected_errors` turns bad input into `lm-eval-mlc CMD: error: ...`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lm_eval_mlc.cli import calibrate, compare, gate, plot, probe, rules, run, show


def build_parser() -> argparse.ArgumentParser:
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
    run.add_parsers(sub)  # run, tasks-dir
    for module in (rules, show, plot, compare, gate, calibrate, probe):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["run"]:  # every other argument is lm-eval's to parse
        run.run(argv[1:])
        return
    args = parser.parse_args(argv)
    status = args.handler(args)
    if status is not None:
        sys.exit(status)
