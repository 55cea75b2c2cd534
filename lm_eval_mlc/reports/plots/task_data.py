"""What the figures of one task read from a run: per-doc records by filter, docs, label steps.

Loaded once per task (`load_task_data`) so every figure module works on the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lm_eval_mlc.core.payload import load_payload
from lm_eval_mlc.reports.runs import RunResults, filter_sort_key, read_samples


@dataclass
class TaskData:
    task: str
    model: str
    labels: list[str]
    records: dict[str, list[dict[str, Any]]]  # filter -> per-doc records, doc order
    docs: list[dict[str, Any]]
    steps: list[list[dict[str, Any]]]  # per doc, [] for plain-text responses
    payloads: list[dict[str, Any] | None]  # per doc, None for plain-text responses


def load_task_data(result: RunResults, task: str) -> TaskData:
    """The samples of `task` in `result`, filters in strategy order; errors name the file."""
    path = result.samples_path(task)
    if path is None:
        raise ValueError(
            f"{result.path}: no samples file for {task}; plot needs a run with --log_samples."
        )
    samples = read_samples(path)
    records = {
        name: [s["micro_f1"] for s in rows if isinstance(s.get("micro_f1"), dict)]
        for name, rows in sorted(samples.items(), key=lambda kv: filter_sort_key(kv[0]))
    }
    records = {name: rows for name, rows in records.items() if rows}
    if not records:
        raise ValueError(f"{path}: no per-doc records (is this an lm-eval-mlc task?).")
    first = samples.get("generated") or next(iter(samples.values()))
    docs = [s["doc"] for s in first]
    steps, payloads = [], []
    for sample in first:
        response = sample["resps"][0][0] if sample.get("resps") else ""
        try:
            payload = load_payload(response) if isinstance(response, str) else None
        except ValueError as err:
            raise ValueError(f"{path}: doc {sample['doc_id']}: {err}") from None
        steps.append(payload["steps"] if payload else [])
        payloads.append(payload)
    labels = list(docs[0]["label_names"])
    return TaskData(task, result.model, labels, records, docs, steps, payloads)


def stack(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    """One record field of every doc as a (n_docs, n_labels) float array."""
    return np.asarray([row[key] for row in rows], dtype=float)
