"""`lm-eval-mlc gate`: fail (exit 1) when a run regressed against a baseline."""

from __future__ import annotations

import argparse

from lm_eval_mlc.cli._errors import expected_errors


def add_parser(sub: argparse._SubParsersAction) -> None:
    gate = sub.add_parser(
        "gate",
        help="fail (exit 1) when a run regressed against a baseline; exit 2 on bad input",
        description="Compare RUN (an --output_path folder or a results JSON) with a baseline "
        "written earlier by --write-baseline. Each metric may worsen by its tolerance "
        "(absolute; the direction comes from higher_is_better). Exit 0: no regression; "
        "1: a metric regressed or is missing; 2: bad input or runs that are not comparable.",
        epilog="examples:\n"
        "  lm-eval-mlc gate out/ --write-baseline baseline.json\n"
        "  lm-eval-mlc gate out/ --baseline baseline.json --tolerance micro_f1=0.02,ece_em10=0.01\n"
        "  lm-eval-mlc gate out/ --baseline baseline.json --metrics micro_f1 "
        "--tolerance micro_f1,max_over_steps=0.05",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gate.add_argument("run", metavar="RUN", help="run folder or results_*.json")
    target = gate.add_mutually_exclusive_group(required=True)
    target.add_argument("--baseline", help="baseline JSON to compare with")
    target.add_argument("--write-baseline", metavar="FILE", help="write RUN's baseline here")
    gate.add_argument(
        "--tolerance",
        help="METRIC=TOL or METRIC,FILTER=TOL, comma-separated (default: --default-tolerance)",
    )
    gate.add_argument("--default-tolerance", type=float, default=0.0, metavar="TOL")
    gate.add_argument("--metrics", help="gate only these metrics (comma-separated)")
    gate.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="compare even when task versions or --limit differ from the baseline",
    )
    gate.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from lm_eval_mlc.reports import gate

    with expected_errors("gate"):  # GateInputError is a ValueError
        if args.write_baseline:
            baseline = gate.write_baseline(args.run, args.write_baseline)
            n = sum(len(entry["metrics"]) for entry in baseline["tasks"].values())
            print(f"wrote {args.write_baseline}: {n} metrics of {', '.join(baseline['tasks'])}")
            return 0
        if args.default_tolerance < 0:
            raise gate.GateInputError("Expected --default-tolerance >= 0.")
        rows = gate.gate(
            args.run,
            args.baseline,
            tolerances=gate.parse_tolerances(args.tolerance),
            default_tolerance=args.default_tolerance,
            metrics=args.metrics.split(",") if args.metrics else None,
            allow_mismatch=args.allow_mismatch,
        )
    print(gate.format_rows(rows))
    return 1 if any(row.failed for row in rows) else 0
