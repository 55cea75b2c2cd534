"""`lm-eval-mlc show`: the compact results of one run (a row per task x strategy)."""

from __future__ import annotations

import argparse
import sys

from lm_eval_mlc.cli._errors import expected_errors


def add_parser(sub: argparse._SubParsersAction) -> None:
    show = sub.add_parser(
        "show",
        help="compact results of one run: a row per task x strategy, with 95%% intervals",
        description="One row per task x strategy filter with micro/macro F1, ECE, Brier, "
        "ROC-AUC, alignment and the invalid-label rate, each with its 95% bootstrap interval "
        "over the run's docs, and the any-place estimates' bound or interval width. Reads what "
        "lm_eval --output_path ... --log_samples wrote.",
    )
    show.add_argument("run", metavar="RUN_OR_JSON")
    show.add_argument("--full", action="store_true", help="lm-eval's own table, every metric")
    show.add_argument("--draws", type=int, default=1000, help="bootstrap draws (1000)")
    show.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from lm_eval_mlc.reports.summary import summary

    with expected_errors("show"):
        text = summary(args.run, full=args.full, n_draws=args.draws)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
