"""Reading a run's samples for `calibrate`: per-filter records, validated, and the docs' identity.

Reads the samples files lm-eval writes with `--log_samples` (one per-doc record per strategy
filter, see `lm_eval_mlc.harness.records`), plus the split each run evaluated (from
`configs[task].metadata.eval_split` of the results JSON beside the samples file; no key means
`test`) and a hash per doc, which `calibration_fit.check_independent` compares across runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lm_eval_mlc.core.calibration import CalibrationInputError
from lm_eval_mlc.harness.records import METRIC_KEYS
from lm_eval_mlc.reports.runs import load_results, read_samples, samples_file


@dataclass(frozen=True)
class Records:
    """One strategy filter's per-doc records of a samples file, stacked (n_docs, n_labels)."""

    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray
    annotator_probs: np.ndarray | None  # None unless every doc has a distribution

    @property
    def binary(self) -> bool:
        """Probabilities all 0 or 1 (the `generated` filter): nothing to calibrate."""
        return bool(np.isin(self.probs, (0.0, 1.0)).all())


@dataclass(frozen=True)
class RunSamples:
    """What `calibrate` needs of one run: its records by filter and where its docs came from."""

    path: Path
    task: str
    labels: tuple[str, ...]
    eval_split: str | None  # None: no results JSON beside the samples file
    doc_keys: tuple[str, ...]
    filters: dict[str, Records]


def doc_key(doc: dict[str, Any]) -> str:
    """A short hash of a doc's text (the whole doc when it has none): its identity across runs."""
    text = doc.get("text")
    raw = text if isinstance(text, str) else json.dumps(doc, sort_keys=True)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def infer_task(run: str | Path) -> str:
    """The one task with a samples file under `run` (or of the samples file itself)."""
    path = Path(run)
    files = [path] if path.is_file() else sorted(path.glob("**/samples_*.jsonl"))
    tasks = sorted({f.stem.removeprefix("samples_").rpartition("_")[0] for f in files})
    if len(tasks) != 1:
        found = ", ".join(tasks) if tasks else "none"
        raise CalibrationInputError(
            f"{path}: expected samples of exactly one task (found {found}); pass --task."
        )
    return tasks[0]


def read_run(run: str | Path, task: str) -> RunSamples:
    """Records of every filter of `task` in a run folder or samples file, validated.

    Errors name the file, and the doc and field of a bad record. Docs without a record under
    a filter (the response lacked that strategy) are left out of it, as the harness does.
    """
    path = samples_file(run, task)
    by_filter = read_samples(path)
    first = next(iter(by_filter.values()))[0]
    labels = first.get("doc", {}).get("label_names")
    if not isinstance(labels, list) or not labels:
        raise CalibrationInputError(
            f"{path}: doc {first['doc_id']} has no 'label_names'; not a multi-label task sample."
        )
    keys: set[str] = set()
    filters = {}
    for name, samples in by_filter.items():
        for sample in samples:
            if sample.get("doc", {}).get("label_names") != labels:
                raise CalibrationInputError(
                    f"{path}: doc {sample['doc_id']} (filter '{name}'): field 'doc.label_names' "
                    f"differs from the first doc's {labels}."
                )
            keys.add(doc_key(sample["doc"]))
        records = _records(path, name, samples, len(labels))
        if records is not None:
            filters[name] = records
    return RunSamples(
        path, task, tuple(labels), _eval_split(path, task), tuple(sorted(keys)), filters
    )


def _records(path: Path, name: str, samples: list[dict], n_labels: int) -> Records | None:
    rows: dict[str, list] = {"y_true": [], "y_pred": [], "probs": [], "annotator_probs": []}
    for sample in samples:
        key = next((k for k in METRIC_KEYS if isinstance(sample.get(k), dict)), None)
        if key is None:
            continue
        record, where = sample[key], f"{path}: doc {sample['doc_id']} (filter '{name}')"
        for part in ("y_true", "y_pred", "probs"):
            values = record.get(part)
            binary = part != "probs"
            if not _probabilities(values, n_labels) or (binary and set(values) - {0, 1}):
                allowed = "0/1" if binary else "[0, 1]"
                raise CalibrationInputError(
                    f"{where}: field '{key}.{part}': expected {n_labels} numbers in {allowed} "
                    f"(one per label), but got {str(values)[:80]}."
                )
            rows[part].append(values)
        annotators = record.get("annotator_probs") or None
        if annotators is not None and not _probabilities(annotators, n_labels):
            raise CalibrationInputError(
                f"{where}: field '{key}.annotator_probs': expected {n_labels} numbers in [0, 1] "
                f"or [], but got {str(annotators)[:80]}."
            )
        rows["annotator_probs"].append(annotators)
    if not rows["probs"]:
        return None
    annotators = rows["annotator_probs"]
    return Records(
        y_true=np.array(rows["y_true"], dtype=int),
        y_pred=np.array(rows["y_pred"], dtype=int),
        probs=np.array(rows["probs"]),
        annotator_probs=None if None in annotators else np.array(annotators, dtype=float),
    )


def _probabilities(values: Any, n: int) -> bool:
    """`values` is a list of `n` numbers in [0, 1] (NaN fails the comparison)."""
    return (
        isinstance(values, list)
        and len(values) == n
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        and all(0 <= v <= 1 for v in values)
    )


def _eval_split(samples_path: Path, task: str) -> str | None:
    """The split a run evaluated, from the results JSON written with its samples file."""
    stamp = samples_path.stem.removeprefix(f"samples_{task}_")
    results = samples_path.with_name(f"results_{stamp}.json")
    if not results.is_file():
        return None
    config = (load_results(results).data.get("configs") or {}).get(task)
    if not isinstance(config, dict):
        return None
    return (config.get("metadata") or {}).get("eval_split") or "test"
