"""`lm-eval-mlc rules`: fit the uncertainty decision rules on a validation run, report on test."""

from __future__ import annotations

import argparse

from lm_eval_mlc.cli._errors import expected_errors


def add_parser(sub: argparse._SubParsersAction) -> None:
    rules = sub.add_parser(
        "rules",
        help="fit the uncertainty decision rules on a validation run, report them on a test run",
        description="Fit prob/entropy/logtoku thresholds on VALIDATION (an hf-mlc run with "
        '--metadata \'{"eval_split": "validation"}\' --log_samples) and apply them to TEST.',
    )
    rules.add_argument("--validation", required=True, help="output folder of the validation run")
    rules.add_argument("--test", required=True, help="output folder of the test run")
    rules.add_argument(
        "--task",
        default="goemotions_ml",
        help="task of both runs to fit and report (goemotions_ml)",
    )
    rules.add_argument("--output", help="write the report as JSON here (atomically)")
    rules.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> None:
    import json

    from lm_eval_mlc._io import write_atomic
    from lm_eval_mlc.reports.rules import fit_and_report
    from lm_eval_mlc.reports.runs import load_samples

    with expected_errors("rules"):
        report = fit_and_report(
            load_samples(args.validation, args.task), load_samples(args.test, args.task)
        )
    print(f"{'rule':<9}{'threshold':>10}{'micro_f1':>10}{'macro_f1':>10}{'2-label':>9}")
    for rule, row in report.items():
        print(
            f"{rule:<9}{row['threshold']:>10.4g}{row['micro_f1']:>10.4f}"
            f"{row['macro_f1']:>10.4f}{row['two_label_rate']:>9.2f}"
        )
    if args.output:
        write_atomic(args.output, json.dumps(report, indent=2))
