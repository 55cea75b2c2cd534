"""`lm-eval-mlc probe`: the supervised probe on a task's train split, scored on its eval docs.

The adapter between lm-eval and :mod:`lm_eval_mlc.harness.probe`: it builds each doc's prompt
exactly as the harness does for generation (`Task.fewshot_context`, chat template included), appends
the start of the answer up to the first label name (`["`, as `doc_to_target` writes it), reads
the model's hidden state there, fits the probe on the train docs and reports the harness's
metrics on the eval docs (test, or `--metadata '{"eval_split": ...}'`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lm_eval_mlc._io import atomic_path
from lm_eval_mlc.core.parsing import to_indicator
from lm_eval_mlc.harness.compat import gen_prefix, task_index
from lm_eval_mlc.harness.probe import (
    Probe,
    fit_probe,
    hidden_features,
    predict_proba,
    probe_metrics,
)

#: `doc_to_target`'s JSON answer (`["joy", ...]`) up to its first label name.
ANSWER_PREFIX = '["'

Doc = Mapping[str, Any]


class ProbeInputError(ValueError):
    """A task, its docs or an option the probe cannot use."""


@dataclass(frozen=True)
class DocArrays:
    """What the probe needs from a split's docs: label names, gold (n, L), annotators (n, L)."""

    label_names: tuple[str, ...]
    gold: np.ndarray
    annotator_probs: np.ndarray | None  # None unless every doc has annotator fractions


def load_task(name: str, metadata: Mapping[str, Any] | None = None) -> Any:
    """One task of ours (or lm-eval's) by name, its data loaded and validated now."""
    from lm_eval_mlc.harness.plugin import task_manager

    manager = task_manager(metadata=dict(metadata or {}))
    if name not in task_index(manager):
        raise ProbeInputError(f"Unknown task {name!r}; `lm_eval ls tasks` lists the known ones.")
    tasks = manager.load([name])["tasks"]
    if len(tasks) != 1:
        raise ProbeInputError(f"Expected one task, but {name!r} is a group of {sorted(tasks)}.")
    return next(iter(tasks.values()))


def select(docs: Sequence[Doc], limit: int | None, *, seed: int | None = None) -> list[Doc]:
    """The first `limit` docs (seed None, as lm-eval's --limit), or a seeded sample in order."""
    if limit is not None and limit < 1:
        raise ProbeInputError(f"Expected a limit >= 1, but got {limit}.")
    n = len(docs)
    if limit is None or limit >= n:
        return [docs[i] for i in range(n)]
    index = range(limit) if seed is None else sorted(random.Random(seed).sample(range(n), limit))
    return [docs[i] for i in index]


def doc_arrays(docs: Sequence[Doc], where: str) -> DocArrays:
    """Gold and annotator matrices of `docs`; errors name `where` (task and split) and the doc."""
    if not docs:
        raise ProbeInputError(f"{where}: no docs.")
    names = docs[0].get("label_names")
    if not names:
        raise ProbeInputError(f"{where}: doc 0: field 'label_names' is missing or empty.")
    names = tuple(names)
    gold, annotators = [], []
    for i, doc in enumerate(docs):
        if tuple(doc.get("label_names") or ()) != names:
            raise ProbeInputError(f"{where}: doc {i}: field 'label_names' differs from doc 0's.")
        try:
            gold.append(to_indicator(doc["labels"], names))
        except (KeyError, ValueError) as err:
            raise ProbeInputError(f"{where}: doc {i}: field 'labels': {err}") from None
        q = doc.get("annotator_probs") or []
        if q and len(q) != len(names):
            raise ProbeInputError(
                f"{where}: doc {i}: field 'annotator_probs': {len(q)} values, {len(names)} labels."
            )
        annotators.append(q)
    has_annotators = all(len(q) for q in annotators)
    return DocArrays(
        names,
        np.asarray(gold, dtype=int),
        np.asarray(annotators, float) if has_annotators else None,
    )


def contexts(
    task: Any,
    docs: Sequence[Doc],
    lm: Any,
    *,
    num_fewshot: int = 0,
    apply_chat_template: bool = False,
    fewshot_as_multiturn: bool = False,
) -> list[str]:
    """Each doc's generation prompt as the harness builds it, plus the answer's opening `["`.

    Without a chat template the model writes the task's target delimiter first, as its
    few-shot demonstrations show; with one, the answer opens the assistant turn. Few-shot
    demonstrations come from the task's sampler (seeded by the caller); lm-eval excludes the
    doc itself only when it samples from the eval split, so a train doc may, rarely (about
    k / train size), see itself as a demonstration.
    """
    opening = ANSWER_PREFIX if apply_chat_template else task.config.target_delimiter + ANSWER_PREFIX
    return [
        task.fewshot_context(
            doc,
            num_fewshot=num_fewshot,
            apply_chat_template=apply_chat_template,
            fewshot_as_multiturn=fewshot_as_multiturn,
            chat_template=lm.apply_chat_template if apply_chat_template else None,
            gen_prefix=gen_prefix(task, doc),
        )
        + opening
        for doc in docs
    ]


def run_probe(
    lm: Any,
    task: Any,
    *,
    num_fewshot: int = 0,
    apply_chat_template: bool = False,
    fewshot_as_multiturn: bool = False,
    layer: int = -1,
    n_components: int = 64,
    limit: int | None = None,
    train_limit: int | None = None,
    batch_size: int = 8,
    seed: int = 1234,
) -> tuple[Probe, dict[str, Any]]:
    """Fit the probe on `task`'s train docs and score it on its eval docs.

    Train docs: all, or a `train_limit` sample drawn with `seed` (train splits are often
    ordered by source or label). Eval docs: the first `limit`, as lm-eval's --limit. Targets are
    the annotators' fractions when every train doc has them, else the gold 0/1 set. Returns the
    probe and a JSON-ready report.
    """
    name = task.config.task
    if not task.has_training_docs():
        raise ProbeInputError(f"Task {name!r} has no training split to fit the probe on.")
    if num_fewshot < 0:
        raise ProbeInputError(f"Expected --num_fewshot >= 0, but got {num_fewshot}.")
    train_docs = select(task.training_docs(), train_limit, seed=seed)
    test_docs = select(task.eval_docs, limit)
    train = doc_arrays(train_docs, f"{name} (train split)")
    test = doc_arrays(test_docs, f"{name} (eval split)")
    if test.label_names != train.label_names:
        raise ProbeInputError(f"{name}: the eval docs' label_names differ from the train docs'.")
    if num_fewshot:
        task.set_fewshot_seed(seed)
    prompt_options = {
        "num_fewshot": num_fewshot,
        "apply_chat_template": apply_chat_template,
        "fewshot_as_multiturn": fewshot_as_multiturn,
    }
    features = {
        split: hidden_features(
            lm,
            contexts(task, docs, lm, **prompt_options),
            layer=layer,
            batch_size=batch_size,
            desc=f"probe features ({split})",
        )
        for split, docs in (("train", train_docs), ("test", test_docs))
    }
    target_kind = "annotators" if train.annotator_probs is not None else "gold"
    targets = train.annotator_probs if train.annotator_probs is not None else train.gold
    probe = fit_probe(
        features["train"],
        targets,
        label_names=train.label_names,
        n_components=n_components,
        seed=seed,
    )
    probs = predict_proba(probe, features["test"])
    report = {
        "task": name,
        "n_train": len(train_docs),
        "n_test": len(test_docs),
        "target": target_kind,
        "layer": layer,
        "components": probe.n_components,
        "hidden_size": int(features["train"].shape[1]),
        **prompt_options,
        "label_names": list(train.label_names),
        "constant_labels": [
            n
            for n, c in zip(probe.label_names, probe.classifiers, strict=True)
            if isinstance(c, float)
        ],
        "metrics": probe_metrics(test.gold, probs, test.annotator_probs),
    }
    return probe, report


def save_probe(probe: Probe, path: str | Path) -> None:
    """Write the probe (scikit-learn objects and label names) with joblib, atomically."""
    import joblib

    if Path(path).suffix not in (".joblib", ".pkl"):
        raise ProbeInputError(f"Expected --save to end in .joblib or .pkl, but got {str(path)!r}.")
    with atomic_path(path) as tmp:
        joblib.dump(probe, tmp)
