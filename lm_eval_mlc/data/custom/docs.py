"""The custom task's row checks and its docs: one per row, or one per id for per-annotator rows.

Per-annotator docs follow the package docstring: each annotator counts once, `annotator_probs`
is the fraction of annotators choosing each label, and the gold set is the strict majority.
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np

from lm_eval_mlc.data._errors import DataProblem
from lm_eval_mlc.data._table import docs_from_columns
from lm_eval_mlc.data.custom.files import Row


def check_rows(
    rows: list[tuple[int, Row]],
    text_column: str,
    id_column: str | None,
    annotator_column: str | None,
    path: str,
    problems: list[DataProblem],
) -> None:
    """Text must be a non-empty string; ids non-empty and, without annotators, unique; the
    per-annotator rows of one id must have an annotator and agree on the text."""
    first: dict[str, tuple[int, Any]] = {}  # id -> (first line, its text)
    for line, row in rows:
        text = row.get(text_column)
        if not isinstance(text, str):
            kind = "null or nothing" if text is None else type(text).__name__
            problems.append(DataProblem(path, line, text_column, f"expected a string, got {kind}"))
        elif not text.strip():
            problems.append(DataProblem(path, line, text_column, "empty text"))
        if not id_column:
            continue
        doc_id = _cell(row, id_column)
        if not doc_id:
            problems.append(DataProblem(path, line, id_column, "empty id"))
            continue
        if annotator_column and not _cell(row, annotator_column):
            problems.append(DataProblem(path, line, annotator_column, "empty annotator"))
        other = first.setdefault(doc_id, (line, text))
        if other[0] == line:
            continue
        if not annotator_column:
            message = f"duplicate id {doc_id!r} (line {other[0]})"
            problems.append(DataProblem(path, line, id_column, message))
        elif text != other[1]:
            message = f"text differs from line {other[0]}, which has the same id {doc_id!r}"
            problems.append(DataProblem(path, line, text_column, message))


def build_docs(
    rows: list[tuple[int, Row]],
    indicators: list[np.ndarray],
    names: Sequence[str],
    text_column: str,
    id_column: str | None,
    annotator_column: str | None,
) -> datasets.Dataset:
    """One doc per row, or per id with annotator distributions when rows are per annotator."""
    ids = [_cell(row, id_column) if id_column else str(line) for line, row in rows]
    if not annotator_column:
        labels = [[n for n, on in zip(names, ind, strict=True) if on] for ind in indicators]
        return docs_from_columns(
            {
                "id": ids,
                "text": [row[text_column] for _, row in rows],
                "labels": labels,
                "annotator_probs": [[] for _ in rows],
                "n_raters": [0] * len(rows),
            }
        )
    # Per-annotator rows: mean per (id, annotator) first, so a repeated annotator counts once.
    answers: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    texts: dict[str, str] = {}
    for (_, row), doc_id, ind in zip(rows, ids, indicators, strict=True):
        answers[doc_id][_cell(row, annotator_column)].append(ind)
        texts.setdefault(doc_id, row[text_column])
    columns: dict[str, list] = defaultdict(list)
    for doc_id, by_annotator in answers.items():
        probs = np.mean([np.mean(a, axis=0) for a in by_annotator.values()], axis=0)
        columns["id"].append(doc_id)
        columns["text"].append(texts[doc_id])
        columns["labels"].append([n for n, p in zip(names, probs, strict=True) if p > 0.5])
        columns["annotator_probs"].append(probs.tolist())
        columns["n_raters"].append(len(by_annotator))
    if not answers:
        columns = {k: [] for k in ("id", "text", "labels", "annotator_probs", "n_raters")}
    return docs_from_columns(columns)


def _cell(row: Row, column: str) -> str:
    """A cell as a stripped string ("" when missing or null)."""
    value = row.get(column)
    return "" if value is None else str(value).strip()
