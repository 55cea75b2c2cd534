"""The custom task's label set and each row's 0/1 label indicator.

Labels come from 0/1 label columns (`label_columns`) or from one column of label names
(`labels_column`: a JSON list or a `label_separator`-separated string).
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lm_eval_mlc.core.parsing import normalise_label
from lm_eval_mlc.data._errors import DataProblem, DataValidationError
from lm_eval_mlc.data.custom.files import YAML, Row


def label_set(
    tables: Mapping[str, list[tuple[int, Row]]],
    files: Mapping[str, str],
    label_columns: Sequence[str] | None,
    labels_column: str | None,
    label_names: Sequence[str] | None,
    sep: str,
    problems: list[DataProblem],
) -> list[str]:
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


def indicator(
    row: Row,
    line: int,
    names: Sequence[str],
    label_columns: Sequence[str] | None,
    labels_column: str | None,
    sep: str,
    path: str,
    problems: list[DataProblem],
) -> np.ndarray:
    """The row's labels as 0/1 over `names`; bad cells and unknown names become problems."""
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


def _split_names(value: Any, separator: str) -> list[str]:
    """Label names from a cell: a list, a JSON list, or a `separator`-separated string."""
    if isinstance(value, list):
        return [str(v).strip() for v in value]
    text = str(value or "").strip()
    if text.startswith("["):
        try:
            return [str(v).strip() for v in json.loads(text)]
        except json.JSONDecodeError:
            pass
    return [part.strip() for part in text.split(separator) if part.strip()]
