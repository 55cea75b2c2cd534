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
    _add_plot(sub)
    _add_compare(sub)
    _add_gate(sub)
    if argv[:1] == ["run"]:
        run(argv[1:])
        return
    args = parser.parse_args(argv)
    if args.command == "tasks-dir":
        print(TASKS_DIR)
    elif args.command == "rules":
        _rules(args)
    elif args.command == "plot":
        sys.exit(_plot(args))
    elif args.command == "compare":
        sys.exit(_compare(args))
    elif args.command == "gate":
        sys.exit(_gate(args))


def _rules(args: argparse.Namespace) -> None:
    import json

    from lm_eval_mlc._io import write_atomic
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
        write_atomic(args.output, json.dumps(report, indent=2))


def _add_plot(sub: argparse._SubParsersAction) -> None:
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


def _plot(args: argparse.Namespace) -> int:
    from lm_eval_mlc.plots import plot_run

    try:
        if args.docs < 1:
            raise ValueError(f"Expected --docs >= 1, but got {args.docs}.")
        report = plot_run(args.run, task=args.task, out=args.out, n_docs=args.docs)
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"lm-eval-mlc plot: error: {err}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for path in report.files:
        print(path)
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser(
        "compare",
        help="leaderboard of runs with bootstrap confidence intervals (md, csv, html)",
        description="One row per model x task x strategy filter, the chosen metrics as columns "
        "with 95%% bootstrap intervals over the docs of each run's samples file (resampled with "
        "a fixed seed). Runs whose task version, --limit, n-shot or doc count differ are "
        "flagged in the table and on stderr.",
        epilog="examples:\n"
        "  lm-eval-mlc compare out_a/ out_b/\n"
        "  lm-eval-mlc compare out_a/ out_b/results_2026-01-01T00-00-00.json "
        "--metrics micro_f1,ece,align_js --sort ece\n"
        "  lm-eval-mlc compare out_*/ --format html --out leaderboard.html\n"
        "  lm-eval-mlc compare out_*/ --format csv --draws 2000 --seed 1 > leaderboard.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("runs", nargs="+", metavar="RUN_OR_JSON")
    compare.add_argument("--metrics", default="micro_f1,macro_f1,ece", help="comma-separated")
    compare.add_argument("--sort", help="metric to rank by, best first (default: the first)")
    compare.add_argument("--format", choices=("md", "csv", "html"), default="md")
    compare.add_argument("--out", help="write here (atomically) instead of stdout")
    compare.add_argument("--draws", type=int, default=1000, help="bootstrap draws (1000)")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")


def _compare(args: argparse.Namespace) -> int:
    from lm_eval_mlc._io import write_atomic
    from lm_eval_mlc.leaderboard import build_leaderboard, render

    try:
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
    except (FileNotFoundError, ValueError) as err:
        print(f"lm-eval-mlc compare: error: {err}", file=sys.stderr)
        return 2
    for warning in board.warnings:
        print(f"lm-eval-mlc compare: warning: {warning}", file=sys.stderr)
    if args.out:
        write_atomic(args.out, text)
        print(f"wrote {args.out} ({len(board.rows)} rows)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _add_gate(sub: argparse._SubParsersAction) -> None:
    gate = sub.add_parser(
        "gate",
        help="fail (exit 1) when a run regressed against a baseline; exit 2 on bad input",
        description="Compare RUN (an --output_path folder or a results JSON) with a baseline "
        "written earlier by --write-baseline. Each metric may worsen by its tolerance "
        "(absolute; the direction comes from higher_is_better). Exit 0: no regression; "
        "1: a metric regressed or is missing; 2: bad input or runs that are not comparable.",
        epilog="examples:\n"
        "  lm-eval-mlc gate out/ --write-baseline baseline.json\n"
        "  lm-eval-mlc gate out/ --baseline baseline.json --tolerance micro_f1=0.02,ece=0.01\n"
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


def _gate(args: argparse.Namespace) -> int:
    from lm_eval_mlc import gate

    try:
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
    except (gate.GateInputError, OSError) as err:
        print(f"lm-eval-mlc gate: error: {err}", file=sys.stderr)
        return 2
    print(gate.format_rows(rows))
    return 1 if any(row.failed for row in rows) else 0


if __name__ == "__main__":
    main()
