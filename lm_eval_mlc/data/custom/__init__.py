"""Bring your own multi-label data: a CSV, TSV or JSONL file becomes a task.

The task YAML `include:`s `_mlc_custom_template_yaml` and names the files and columns in
`dataset_kwargs` (see the README). Labels come either from 0/1 label columns
(`label_columns`) or from one column listing label names (`labels_column`: a JSON list or a
`label_separator`-separated string). With `annotator_column`, rows are per-annotator answers:
rows sharing an `id_column` value form one doc, each annotator counts once (the mean of their
repeated answers), `annotator_probs` is the fraction of annotators choosing each label, and the
gold set is the strict majority.

Every problem is reported at once, naming the YAML key (`dataset_kwargs.<key>`) or the file,
1-based line and column, before any model loads. Reading the files is in `files`, the label
set in `labels`, the row checks and docs in `docs`.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np

from lm_eval_mlc.data._docs import with_eval_split, with_label_names
from lm_eval_mlc.data._errors import DataProblem, DataValidationError
from lm_eval_mlc.data.custom.docs import build_docs, check_rows
from lm_eval_mlc.data.custom.files import SPLITS, YAML, check_columns, read_rows, split_files
from lm_eval_mlc.data.custom.labels import indicator, label_set


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
    files = split_files(data_files, problems)
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

    tables = {split: read_rows(path, problems) for split, path in files.items()}
    needed = [text_column, *(label_columns or []), *filter(None, [labels_column])]
    needed += [c for c in (id_column, annotator_column) if c]
    # Rows that could not be read are already reported and left out; missing columns would
    # make every row a problem, so they end the check here.
    columns_ok = [
        check_columns(files[split], rows, needed, problems) for split, rows in tables.items()
    ]
    if not all(columns_ok):
        raise DataValidationError(problems)

    names = label_set(
        tables, files, label_columns, labels_column, label_names, label_separator, problems
    )
    indicators: dict[str, list[np.ndarray]] = {}
    for split, rows in tables.items():
        path = files[split]
        indicators[split] = [
            indicator(
                row, line, names, label_columns, labels_column, label_separator, path, problems
            )
            for line, row in rows
        ]
        check_rows(rows, text_column, id_column, annotator_column, path, problems)
    if problems:
        raise DataValidationError(problems)
    columns = (names, text_column, id_column, annotator_column)
    data = {
        split: build_docs(tables.get(split, []), indicators.get(split, []), *columns)
        for split in SPLITS
    }
    return datasets.DatasetDict(data), names
