"""`lm-eval-mlc probe`: a supervised probe from the hidden state at the first label position."""

from __future__ import annotations

import argparse
import sys

from lm_eval_mlc.cli._errors import expected_errors


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    probe.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import json

    from lm_eval_mlc._io import write_atomic
    from lm_eval_mlc.reports.probe import ProbeInputError, load_task, run_probe, save_probe

    with expected_errors("probe"):  # json and data-validation errors are ValueErrors
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
