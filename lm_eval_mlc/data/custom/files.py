"""The custom task's data files: the YAML's `data_files`, and reading them into rows.

CSV and TSV files have a header on line 1; JSONL files hold one object a line. Rows keep the
1-based line they start on, so every later problem can name it.
"""

import json
from pathlib import Path
from typing import Any

from lm_eval_mlc.data._errors import DataProblem
from lm_eval_mlc.data._records import csv_records, lines

#: The `file` of problems in the task YAML's settings rather than in a data file.
YAML = "task YAML"
SPLITS = ("train", "validation", "test")
Row = dict[str, Any]


def split_files(data_files: Any, problems: list[DataProblem]) -> dict[str, str]:
    """Split -> file from `dataset_kwargs.data_files` (a single file is the test split)."""
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


def read_rows(path: str, problems: list[DataProblem]) -> list[tuple[int, Row]]:
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
    records = csv_records(Path(path), problems, delimiter="\t" if path.endswith(".tsv") else ",")
    _, header = next(records, (0, None))
    if header is None:
        return rows
    for line_no, record in records:
        if not record:  # blank line
            continue
        if len(record) != len(header):
            message = f"expected {len(header)} fields as in the header, got {len(record)}"
            problems.append(DataProblem(path, line_no, "(line)", message))
            continue
        rows.append((line_no, dict(zip(header, record, strict=True))))
    return rows


def check_columns(
    path: str, rows: list[tuple[int, Row]], needed: list[str], problems: list[DataProblem]
) -> bool:
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
