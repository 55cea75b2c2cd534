"""`lm-eval-mlc calibrate`: per-label thresholds and Platt scaling, fit on validation, on test."""

from __future__ import annotations

import argparse
import sys

from lm_eval_mlc.cli._errors import expected_errors, note, warn


def add_parser(sub: argparse._SubParsersAction) -> None:
    calibrate = sub.add_parser(
        "calibrate",
        help="fit per-label thresholds and Platt scaling on a validation run, report on a test run",
        description="Fit, per strategy filter and label, Platt scaling and the threshold that "
        'maximises F1 on VAL_RUN (a run with --metadata \'{"eval_split": "validation"}\' '
        "--log_samples), or read a fit saved with --save; apply it to TEST_RUN and print "
        "micro/macro F1 (thresholds), ECE, Brier and alignment (Platt) before and after. "
        "Refuses a test run that is the validation run, shares all its docs or evaluated the "
        "same split. Exit 2 on bad input.",
        epilog="examples:\n"
        "  lm-eval-mlc calibrate --validation val/ --test test/ --save calibration.json\n"
        "  lm-eval-mlc calibrate --validation val/ --test test/ --task convabuse_ml "
        "--strategies max_over_steps,marginal --output report.json\n"
        "  lm-eval-mlc calibrate --calibration calibration.json --test test2/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = calibrate.add_mutually_exclusive_group(required=True)
    source.add_argument("--validation", metavar="VAL_RUN", help="run folder or samples JSONL")
    source.add_argument("--calibration", metavar="FILE", help="a fit saved earlier with --save")
    calibrate.add_argument("--test", required=True, metavar="TEST_RUN", help="run folder or JSONL")
    calibrate.add_argument("--task", help="task (default: the run's only task / the fit's)")
    calibrate.add_argument("--strategies", help="only these filters (comma-separated)")
    calibrate.add_argument("--save", metavar="FILE", help="write the fit here (JSON, atomically)")
    calibrate.add_argument("--output", metavar="FILE", help="write the report here (JSON)")
    calibrate.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import json

    from lm_eval_mlc._io import write_atomic
    from lm_eval_mlc.core.calibration import Calibration
    from lm_eval_mlc.reports.calibrate import calibrate, format_report

    strategies = [s.strip() for s in (args.strategies or "").split(",") if s.strip()] or None
    with expected_errors("calibrate"):
        if args.calibration and args.save:
            raise ValueError("--save needs --validation (the fit is already saved).")
        source = Calibration.load(args.calibration) if args.calibration else args.validation
        calibration, report = calibrate(source, args.test, task=args.task, strategies=strategies)
    for message in report.notes:
        note(message)
    for warning in report.warnings:
        warn("calibrate", warning)
    print(format_report(report))
    if args.save:
        calibration.save(args.save)
        print(f"wrote {args.save}", file=sys.stderr)
    if args.output:
        write_atomic(args.output, json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
