"""`lm-eval-mlc plot`: figures (PNG and SVG) from a run folder."""

from __future__ import annotations

import argparse

from lm_eval_mlc.cli._errors import expected_errors, note


def add_parser(sub: argparse._SubParsersAction) -> None:
    plot = sub.add_parser(
        "plot",
        help="figures (PNG and SVG) from a run: reliability, per-step distributions, F1, ...",
        description="From RUN_DIR (an --output_path folder of a run with --log_samples), write "
        "per task: a reliability diagram per strategy, per-step label distributions of a few "
        "docs beside the annotators', entropy and top-1 mass by step, per-label F1 by strategy, "
        "and predicted vs annotator probability (skipped with a note when no annotators).",
        epilog="examples:\n"
        "  lm-eval-mlc plot out/\n"
        "  lm-eval-mlc plot out/ --task goemotions_ml --out figures/ --docs 6",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plot.add_argument("run", metavar="RUN_DIR", help="run folder or results_*.json")
    plot.add_argument("--task", help="only this task (default: every task of the run)")
    plot.add_argument("--out", help="folder for the figures (default: RUN_DIR/plots)")
    plot.add_argument("--docs", type=int, default=4, help="docs in the per-step figure (4)")
    plot.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    with expected_errors("plot"):  # ImportError: matplotlib is missing
        from lm_eval_mlc.reports.plots import plot_run

        if args.docs < 1:
            raise ValueError(f"Expected --docs >= 1, but got {args.docs}.")
        report = plot_run(args.run, task=args.task, out=args.out, n_docs=args.docs)
    for message in report.notes:
        note(message)
    for path in report.files:
        print(path)
    return 0
