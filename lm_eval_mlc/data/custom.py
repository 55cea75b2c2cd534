"""Bring your own multi-label data: a CSV, TSV or JSONL file becomes a task.

The task YAML `include:`s `_mlc_custom_template_yaml` and names the files and columns in
`dataset_kwargs` (see the README). Labels come either from 0/1 label columns
(`label_columns`) or from one column listing label names (`labels_column`: a JSON list or a
`label_separator`-separated string). With `annotator_column`, rows are per-annotator answers:
rows sharing an `id_column` value form one doc, each annotator counts once (the mean of their
repeated answers), `annotator_probs` is the fraction of annotators choosing each label, and the
gold set is the strict majority.

Every problem is reported at once, naming the YAML key (`dataset_kwargs.<key>`) or the file,
1-based line and column, before any model loads.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from lm_eval_mlc.core.parsing import normalise_label
from lm_eval_mlc.data._docs import with_eval_split, with_label_names
from lm_eval_mlc.data._errors import DataProblem, DataValidationError
from lm_eval_mlc.data._local import lines, read_text
from lm_eval_mlc.data._table import docs_from_columns

YAML = "task YAML"
SPLITS = ("train", "validation", "test")
Row = dict[str, Any]


def load_custom_task(
    *,
    label_descriptions: Mapping[str, str] | None = None,
    eval_split: str | None = None,
    **kwargs: Any,
) -> datasets.DatasetDict:
    """`custom_dataset` of the template: the docs plus `label_names` (and descriptions)."""
    data, names = load_custom(**kwargs)
    data = with_label_names(data, names)
    if label_descriptions:
        unknown = sorted(set(label_descriptions) - set(names))
        if unknown:
            raise DataValidationError(
                [DataProblem(YAML, 0, "dataset_kwargs.label_descriptions", f"unknown {unknown}")]
            )
        described = [label_descriptions.get(name, name) for name in names]
        data = datasets.DatasetDict(
            {s: d.add_column("label_descriptions", [described] * len(d)) for s, d in data.items()}
        )
    return with_eval_split(data, eval_split)


def load_custom(
    *,
    data_files: str | Mapping[str, str] | None = None,
    text_column: str = "text",
    id_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    labels_column: str | None = None,
    label_names: Sequence[str] | None = None,
    label_separator: str = ";",
    annotator_column: str | None = None,
    **unused: Any,
) -> tuple[datasets.DatasetDict, list[str]]:
    """The splits (train and validation may be empty) and the label set, in order."""
    problems: list[DataProblem] = []
    files = _data_files(data_files, problems)
    if (label_columns is None) == (labels_column is None):
        problems.append(
            DataProblem(
                YAML,
                0,
                "dataset_kwargs.label_columns",
                "set exactly one of "
                "label_columns (0/1 columns) or labels_column (a column of names)",
            )
        )
    if annotator_column and not id_column:
        problems.append(
            DataProblem(YAML, 0, "dataset_kwargs.id_column", "required with annotator_column")
        )
    if not label_separator:
        problems.append(DataProblem(YAML, 0, "dataset_kwargs.label_separator", "empty"))
    if problems:
        raise DataValidationError(problems)

    tables = {split: _read(path, problems) for split, path in files.items()}
    needed = [text_column, *(label_columns or []), *filter(None, [labels_column])]
    needed += [c for c in (id_column, annotator_column) if c]
    # Rows that could not be read are already reported and left out; missing columns would
    # make every row a problem, so they end the check here.
    columns_ok = [
        _check_columns(files[split], rows, needed, problems) for split, rows in tables.items()
    ]
    if not all(columns_ok):
        raise DataValidationError(problems)

    names = _label_names(
        tables, files, label_columns, labels_column, label_names, label_separator, problems
    )
    indicators: dict[str, list[np.ndarray]] = {}
    for split, rows in tables.items():
        path = files[split]
        indicators[split] = [
            _indicator(
                row, line, names, label_columns, labels_column, label_separator, path, problems
            )
            for line, row in rows
        ]
        _check_rows(rows, text_column, id_column, annotator_column, path, problems)
    if problems:
        raise DataValidationError(problems)
    columns = (names, text_column, id_column, annotator_column)
    data = {
        split: _docs(tables.get(split, []), indicators.get(split, []), *columns) for split in SPLITS
    }
    return datasets.DatasetDict(data), names


def _data_files(data_files: Any, problems: list[DataProblem]) -> dict[str, str]:
    key = "dataset_kwargs.data_files"
    if not data_files:
        problems.append(DataProblem(YAML, 0, key, "missing: a file, or {train:, test:} files"))
        return {}
    files = {"test": data_files} if isinstance(data_files, str) else dict(data_files)
    for split, path in files.items():
        if split not in SPLITS:
            problems.append(DataProblem(YAML, 0, key, f"unknown split {split!r}; use {SPLITS}"))
        elif not Path(path).is_file():
            problems.append(DataProblem(YAML, 0, f"{key}.{split}", f"no such file: {path}"))
    if "test" not in files:
        problems.append(DataProblem(YAML, 0, key, "needs a test file"))
    return files


def _read(path: str, problems: list[DataProblem]) -> list[tuple[int, Row]]:
    """(1-based line, row) pairs from CSV/TSV (header on line 1) or JSONL (one object a line)."""
    rows: list[tuple[int, Row]] = []
    if path.endswith((".jsonl", ".json")):
        # Split on "\n" only: JSON strings may hold raw U+2028 and other Unicode line breaks.
        for line_no, line in enumerate(lines(Path(path), problems), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                problems.append(DataProblem(path, line_no, "(line)", f"bad JSON: {err.msg}"))
                continue
            if not isinstance(row, dict):
                message = f"expected a JSON object, got {type(row).__name__}"
                problems.append(DataProblem(path, line_no, "(line)", message))
                continue
            rows.append((line_no, row))
        return rows
    text = io.StringIO(read_text(Path(path), problems), newline="")
    reader = csv.reader(text, delimiter="\t" if path.endswith(".tsv") else ",")
    header = next(reader, None)
    if header is None:
        return rows
    end = reader.line_num
    for record in reader:
        # Quoted text may span lines; report the line the record starts on.
        line_no, end = end + 1, reader.line_num
        if not record:  # blank line
            continue
        if len(record) != len(header):
            message = f"expected {len(header)} fields as in the header, got {len(record)}"
            problems.append(DataProblem(path, line_no, "(line)", message))
            continue
        rows.append((line_no, dict(zip(header, record, strict=True))))
    return rows


def _check_columns(path: str, rows: list[tuple[int, Row]], needed: list[str], problems) -> bool:
    """False (with problems added) when the file has no rows or lacks a needed column."""
    if not rows:
        problems.append(DataProblem(path, 0, "(file)", "no data rows"))
        return False
    present = set().union(*(row.keys() for _, row in rows))
    missing = [column for column in needed if column not in present]
    for column in missing:
        message = f"no such column (columns: {sorted(present)})"
        problems.append(DataProblem(path, 0, column, message))
    return not missing


def _split_names(value: Any, separator: str) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value]
    text = str(value or "").strip()
    if text.startswith("["):
        try:
            return [str(v).strip() for v in json.loads(text)]
        except json.JSONDecodeError:
            pass
    return [part.strip() for part in text.split(separator) if part.strip()]


def _label_names(tables, files, label_columns, labels_column, label_names, sep, problems):
    """The label set: given, else the label columns, else every name in the data (sorted).

    Names that collide after normalisation are reported where they come from: the YAML key,
    or the file and line where an inferred name first appears. Raises at once only when the
    names cannot be matched to the label columns.
    """
    key = "dataset_kwargs.label_names"
    where: dict[str, tuple[str, int, str]] = {}  # name -> (file, line, field) it came from
    if label_names is not None:
        names = list(label_names)
        if label_columns is not None and len(names) != len(label_columns):
            message = f"{len(names)} names for {len(label_columns)} columns"
            raise DataValidationError([*problems, DataProblem(YAML, 0, key, message)])
    elif label_columns is not None:
        names, key = list(label_columns), "dataset_kwargs.label_columns"
    else:
        for split, rows in tables.items():
            for line, row in rows:
                for name in _split_names(row.get(labels_column), sep):
                    where.setdefault(name, (files[split], line, labels_column))
        names = sorted(where)
    seen: dict[str, str] = {}
    for name in names:
        file, line, field = where.get(name, (YAML, 0, key))
        if not isinstance(name, str):
            problems.append(DataProblem(file, line, field, f"label {name!r} is not a string"))
            continue
        norm = normalise_label(name)
        if not norm or norm in seen:
            problems.append(
                DataProblem(
                    file,
                    line,
                    field,
                    f"label {name!r} is empty or repeats {seen.get(norm)!r} "
                    "after normalisation (case, spaces, '_', '-')",
                )
            )
        seen.setdefault(norm, name)
    return names


def _indicator(row, line, names, label_columns, labels_column, sep, path, problems) -> np.ndarray:
    out = np.zeros(len(names), dtype=int)
    if label_columns is not None:
        for k, column in enumerate(label_columns):
            value = str(row.get(column, "")).strip().lower()
            if value in {"1", "true", "1.0"}:
                out[k] = 1
            elif value not in {"0", "false", "0.0"}:
                problems.append(DataProblem(path, line, column, f"expected 0/1, got {value!r}"))
        return out
    index = {name: k for k, name in enumerate(names)}
    for name in _split_names(row.get(labels_column), sep):
        if name in index:
            out[index[name]] = 1
        else:
            problems.append(DataProblem(path, line, labels_column, f"unknown label {name!r}"))
    return out


def _check_rows(rows, text_column, id_column, annotator_column, path, problems) -> None:
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


def _cell(row: Row, column: str) -> str:
    """A cell as a stripped string ("" when missing or null)."""
    value = row.get(column)
    return "" if value is None else str(value).strip()


def _docs(rows, indicators, names, text_column, id_column, annotator_column):
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
