"""`lm-eval-mlc compare`: a leaderboard of runs with bootstrap confidence intervals."""

from __future__ import annotations

import argparse
import sys

from lm_eval_mlc.cli._errors import expected_errors, warn


def add_parser(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser(
        "compare",
        help="leaderboard of runs with bootstrap confidence intervals (md, csv, html)",
        description="One row per model x task x strategy filter, the chosen metrics as columns "
        "with 95% bootstrap intervals over the docs of each run's samples file (resampled with "
        "a fixed seed). Runs whose task version, --limit, n-shot or doc count differ are "
        "flagged in the table and on stderr.",
        epilog="examples:\n"
        "  lm-eval-mlc compare out_a/ out_b/\n"
        "  lm-eval-mlc compare out_a/ out_b/results_2026-01-01T00-00-00.json "
        "--metrics micro_f1,ece_em10,align_js --sort ece_em10\n"
        "  lm-eval-mlc compare out_*/ --format html --out leaderboard.html\n"
        "  lm-eval-mlc compare out_*/ --format csv --draws 2000 --seed 1 > leaderboard.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("runs", nargs="+", metavar="RUN_OR_JSON")
    compare.add_argument("--metrics", default="micro_f1,macro_f1,ece_em10", help="comma-separated")
    compare.add_argument("--sort", help="metric to rank by, best first (default: the first)")
    compare.add_argument("--format", choices=("md", "csv", "html"), default="md")
    compare.add_argument("--out", help="write here (atomically) instead of stdout")
    compare.add_argument("--draws", type=int, default=1000, help="bootstrap draws (1000)")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    compare.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from lm_eval_mlc._io import write_atomic
    from lm_eval_mlc.reports.leaderboard import build_leaderboard, render

    with expected_errors("compare"):
        if args.draws < 0:
            raise ValueError(f"Expected --draws >= 0, but got {args.draws}.")
        board = build_leaderboard(
            args.runs,
            metrics=[m.strip() for m in args.metrics.split(",") if m.strip()],
            sort=args.sort,
            n_draws=args.draws,
            seed=args.seed,
        )
        text = render(board, args.format)
    for warning in board.warnings:
        warn("compare", warning)
    if args.out:
        write_atomic(args.out, text)
        print(f"wrote {args.out} ({len(board.rows)} rows)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
