"""`lm-eval-mlc`: lm-eval's CLI with this plugin loaded, plus plugin-specific subcommands.

lm-eval-mlc run --tasks goemotions_ml --limit 20       # embedded SmolLM2, hf-mlc
lm-eval-mlc run --model hf --model_args pretrained=... --tasks goemotions_ml_full
lm-eval-mlc tasks-dir                                   # for --include_path elsewhere
lm-eval-mlc show out/                                   # a row per strategy, with intervals
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

    from lm_eval_mlc.data import DataValidationError
    from lm_eval_mlc.harness.plugin import activate

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
    rules.add_argument(
        "--task",
        default="goemotions_ml",
        help="task of both runs to fit and report (goemotions_ml)",
    )
    rules.add_argument("--output", help="write the report as JSON here (atomically)")
    _add_show(sub)
    _add_plot(sub)
    _add_compare(sub)
    _add_gate(sub)
    _add_calibrate(sub)
    _add_probe(sub)
    if argv[:1] == ["run"]:
        run(argv[1:])
        return
    args = parser.parse_args(argv)
    if args.command == "tasks-dir":
        print(TASKS_DIR)
    elif args.command == "rules":
        _rules(args)
    elif args.command == "show":
        sys.exit(_show(args))
    elif args.command == "plot":
        sys.exit(_plot(args))
    elif args.command == "compare":
        sys.exit(_compare(args))
    elif args.command == "gate":
        sys.exit(_gate(args))
    elif args.command == "probe":
        sys.exit(_probe(args))
    elif args.command == "calibrate":
        sys.exit(_calibrate(args))


def _rules(args: argparse.Namespace) -> None:
    import json

    from lm_eval_mlc._io import write_atomic
    from lm_eval_mlc.reports.rules import fit_and_report
    from lm_eval_mlc.reports.runs import load_samples

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
    from lm_eval_mlc.reports.plots import plot_run

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


def _add_show(sub: argparse._SubParsersAction) -> None:
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


def _show(args: argparse.Namespace) -> int:
    from lm_eval_mlc.reports.summary import summary

    try:
        text = summary(args.run, full=args.full, n_draws=args.draws)
    except (FileNotFoundError, ValueError) as err:
        print(f"lm-eval-mlc show: error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
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


def _compare(args: argparse.Namespace) -> int:
    from lm_eval_mlc._io import write_atomic
    from lm_eval_mlc.reports.leaderboard import build_leaderboard, render

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


def _gate(args: argparse.Namespace) -> int:
    from lm_eval_mlc.reports import gate

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


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
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


def _calibrate(args: argparse.Namespace) -> int:
    import json

    from lm_eval_mlc._io import write_atomic
    from lm_eval_mlc.core.calibration import Calibration
    from lm_eval_mlc.reports.calibrate import calibrate, format_report

    strategies = [s.strip() for s in (args.strategies or "").split(",") if s.strip()] or None
    try:
        if args.calibration and args.save:
            raise ValueError("--save needs --validation (the fit is already saved).")
        source = Calibration.load(args.calibration) if args.calibration else args.validation
        calibration, report = calibrate(source, args.test, task=args.task, strategies=strategies)
    except (OSError, ValueError) as err:
        print(f"lm-eval-mlc calibrate: error: {err}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in report.warnings:
        print(f"lm-eval-mlc calibrate: warning: {warning}", file=sys.stderr)
    print(format_report(report))
    if args.save:
        calibration.save(args.save)
        print(f"wrote {args.save}", file=sys.stderr)
    if args.output:
        write_atomic(args.output, json.dumps(report.to_dict(), indent=2) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _add_probe(sub: argparse._SubParsersAction) -> None:
    probe = sub.add_parser(
        "probe",
        help="supervised probe: hidden state at the first label -> P(label), fit on train",
        description="Read the model's hidden state where it is about to write its first label "
        "(the task's generation prompt followed by '[\"'), fit StandardScaler -> TruncatedSVD -> "
        "one logistic regression per label on the train split (targets: the annotators' label "
        "fractions where every train doc has them, else the gold set), and report F1 (P >= 0.5), "
        "ECE, Brier and align_* on the eval docs. --train_limit draws a seeded sample of train "
        "docs; --limit takes the first eval docs, as lm-eval does. Exit 2 on bad input.",
        epilog="examples:\n"
        "  lm-eval-mlc probe --task convabuse_ml --train_limit 500 --limit 200\n"
        '  lm-eval-mlc probe --task goemotions_ml --metadata \'{"data_dir": "data/"}\' '
        "--train_limit 2000 --output probe.json --save probe.joblib\n"
        "  lm-eval-mlc probe --model hf --model_args pretrained=meta-llama/Llama-3.1-8B-Instruct"
        " --apply_chat_template --num_fewshot 4 --layer -4 --device cuda --batch_size 32",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    probe.add_argument("--task", default="goemotions_ml", help="task (default: goemotions_ml)")
    probe.add_argument("--model", default="hf-mlc", help="hf-mlc (default) or another HF model")
    probe.add_argument("--model_args", help="lm-eval model args (default: the embedded SmolLM2)")
    probe.add_argument(
        "--apply_chat_template",
        action=argparse.BooleanOptionalAction,
        help="default: on for the embedded SmolLM2, off for --model_args",
    )
    probe.add_argument("--fewshot_as_multiturn", action="store_true")
    probe.add_argument("--num_fewshot", type=int, default=0, help="demonstrations (0)")
    probe.add_argument("--layer", type=int, default=-1, help="hidden-state index (-1: last)")
    probe.add_argument("--components", type=int, default=64, help="SVD dimensions (64)")
    probe.add_argument("--limit", type=int, help="first N eval docs")
    probe.add_argument("--train_limit", type=int, help="seeded sample of N train docs")
    probe.add_argument("--batch_size", type=int, default=8, help="docs per forward (8)")
    probe.add_argument(
        "--device",
        default="cuda:0",
        help="e.g. cpu, cuda, cuda:1 (default: cuda:0, else the CPU, as lm_eval run)",
    )
    probe.add_argument("--metadata", help='JSON task metadata, e.g. \'{"data_dir": "data/"}\'')
    probe.add_argument("--seed", type=int, default=1234, help="train sample, shots, SVD (1234)")
    probe.add_argument("--output", metavar="FILE", help="write the report here (JSON, atomically)")
    probe.add_argument("--save", metavar="FILE", help="write the probe here (.joblib or .pkl)")


def _probe(args: argparse.Namespace) -> int:
    import json

    from lm_eval_mlc._io import write_atomic
    from lm_eval_mlc.reports.probe import ProbeInputError, load_task, run_probe, save_probe

    try:
        for option in ("components", "batch_size"):
            if getattr(args, option) < 1:
                raise ProbeInputError(f"Expected --{option} >= 1, but got {getattr(args, option)}.")
        if args.save and not args.save.endswith((".joblib", ".pkl")):
            raise ProbeInputError(f"Expected --save to end in .joblib or .pkl: {args.save!r}.")
        try:
            metadata = json.loads(args.metadata) if args.metadata else {}
        except json.JSONDecodeError as err:
            raise ProbeInputError(f"--metadata is not valid JSON: {err}") from None
        if not isinstance(metadata, dict):
            raise ProbeInputError(f"Expected --metadata to be a JSON object: {args.metadata!r}.")
        task = load_task(args.task, metadata)  # bad data fails before the model loads
        lm, model_args, chat = _probe_model(args)
        probe, report = run_probe(
            lm,
            task,
            num_fewshot=args.num_fewshot,
            apply_chat_template=chat,
            fewshot_as_multiturn=args.fewshot_as_multiturn,
            layer=args.layer,
            n_components=args.components,
            limit=args.limit,
            train_limit=args.train_limit,
            batch_size=args.batch_size,
            seed=args.seed,
        )
    except (OSError, ValueError) as err:  # json and data-validation errors are ValueErrors
        print(f"lm-eval-mlc probe: error: {err}", file=sys.stderr)
        return 2
    report = {"model": args.model, "model_args": model_args, **report}
    print(
        f"{report['task']}: probe on layer {args.layer}, {report['components']} components, "
        f"{report['target']} targets, {report['n_train']} train / {report['n_test']} test docs"
    )
    for key, value in report["metrics"].items():
        print(f"{key:<17}{value:>8}" if isinstance(value, int) else f"{key:<17}{value:>8.4f}")
    if args.output:
        write_atomic(args.output, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    if args.save:
        save_probe(probe, args.save)
        print(f"wrote {args.save}", file=sys.stderr)
    return 0


def _probe_model(args: argparse.Namespace) -> tuple[object, str, bool]:
    """The HF model of `args` (embedded SmolLM2 by default), its model args and chat setting."""
    from lm_eval.api.registry import get_model
    from lm_eval.models.huggingface import HFLM

    from lm_eval_mlc.harness.default_model import default_model_args
    from lm_eval_mlc.harness.plugin import register_model

    register_model()
    model_cls = get_model(args.model)
    if not (isinstance(model_cls, type) and issubclass(model_cls, HFLM)):
        raise ValueError(f"Expected a Hugging Face model (hf, hf-mlc), but got {args.model!r}.")
    model_args = args.model_args or default_model_args()
    chat = args.apply_chat_template
    if chat is None:
        chat = args.model_args is None
    extra = {"batch_size": args.batch_size, "device": args.device}
    return model_cls.create_from_arg_string(model_args, extra), model_args, chat


if __name__ == "__main__":
    main()
