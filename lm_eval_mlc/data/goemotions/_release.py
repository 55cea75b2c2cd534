"""Reading a local copy of the original GoEmotions release into the intermediate rows.

The split files are headerless TSV (`text<TAB>label ids<TAB>id`); `emotions.txt` and, for the
Ekman scheme, `ekman_mapping.json` must agree with the label sets in `labels`; the optional
per-rater files `goemotions_{1,2,3}.csv` give the rater distributions.
"""

import json
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lm_eval_mlc.data._errors import DataProblem
from lm_eval_mlc.data._records import lines, read_csv, read_text
from lm_eval_mlc.data.goemotions._rows import RATER_COLUMNS, RaterRows, SplitRows
from lm_eval_mlc.data.goemotions.labels import EKMAN, EMOTIONS

_SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
#: The files a GoEmotions data dir must hold.
REQUIRED_FILES = (*_SPLIT_FILES.values(), "emotions.txt")
_RATER_FILES = ("goemotions_1.csv", "goemotions_2.csv", "goemotions_3.csv")
_BINARY = frozenset({"0", "1"})
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def read_release(
    ge_dir: Path, scheme: str, annotators: bool
) -> tuple[dict[str, SplitRows], list[RaterRows], list[DataProblem]]:
    """The splits, the per-rater tables (when `annotators`) and every problem in the files."""
    problems = _check_emotions_file(ge_dir / "emotions.txt")
    ekman_path = ge_dir / "ekman_mapping.json"
    if scheme == "ekman" and ekman_path.is_file():
        problems += _check_ekman_file(ekman_path)
    splits: dict[str, SplitRows] = {}
    for name, file_name in _SPLIT_FILES.items():
        splits[name], split_problems = _read_split_tsv(ge_dir / file_name)
        problems += split_problems
    raters: list[RaterRows] = []
    if annotators:
        for file_name in _RATER_FILES:
            if (ge_dir / file_name).is_file():
                table, table_problems = _read_rater_csv(ge_dir / file_name)
                problems += table_problems
                if table is not None:
                    raters.append(table)
    return splits, raters, problems


def _read_split_tsv(path: Path) -> tuple[SplitRows, list[DataProblem]]:
    """A headerless `text<TAB>label ids<TAB>id` file; text is unquoted and may hold quotes."""
    source = str(path)
    split = SplitRows(source, [], [], [], [])
    problems: list[DataProblem] = []
    for row, line in enumerate(lines(path, problems), start=1):
        fields = line.split("\t")
        if len(fields) != 3:
            message = f"expected 3 tab-separated fields (text, labels, id), got {len(fields)}"
            problems.append(DataProblem(source, row, "columns", message))
            continue
        text, label_field, doc_id = fields
        split.rows.append(row)
        split.texts.append(text)
        split.label_ids.append(_parse_label_ids(label_field, source, row, problems))
        split.ids.append(doc_id)
    return split, problems


def _parse_label_ids(
    field: str, source: str, row: int, problems: list[DataProblem]
) -> list[int] | None:
    """Comma-separated label ids; None (with problems added) if any is not an integer."""
    if not field.strip():
        return []
    ids: list[int] = []
    for token in field.split(","):
        try:
            ids.append(int(token))
        except ValueError:
            message = f"label id '{token}' is not an integer"
            problems.append(DataProblem(source, row, "labels", message))
            return None
    return ids


def _check_emotions_file(path: Path) -> list[DataProblem]:
    """emotions.txt must list the 28 GoEmotions names in release order (label id = line - 1)."""
    source = str(path)
    problems: list[DataProblem] = []
    names = [line.strip() for line in lines(path, problems)]
    if len(names) != len(EMOTIONS):
        message = f"expected {len(EMOTIONS)} emotion names, one per line; found {len(names)}"
        problems.append(DataProblem(source, 0, "name", message))
    first_row: dict[str, int] = {}
    for row, name in enumerate(names, start=1):
        if not name:
            problems.append(DataProblem(source, row, "name", "empty name"))
        elif name in first_row:
            message = f"duplicate name '{name}' (first on line {first_row[name]})"
            problems.append(DataProblem(source, row, "name", message))
        elif row <= len(EMOTIONS) and name != EMOTIONS[row - 1]:
            message = f"expected '{EMOTIONS[row - 1]}' (label ids follow the release's order)"
            problems.append(DataProblem(source, row, "name", message))
        first_row.setdefault(name, row)
    return problems


def _check_ekman_file(path: Path) -> list[DataProblem]:
    """A local ekman_mapping.json must agree with `EKMAN`, which the Hub path relies on."""
    source = str(path)
    problems: list[DataProblem] = []
    text = read_text(path, problems)
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as err:
        return [*problems, DataProblem(source, err.lineno, "json", err.msg)]
    if not isinstance(mapping, dict):
        message = "expected an object of group -> emotion list"
        return [*problems, DataProblem(source, 0, "json", message)]
    for group in sorted(set(mapping) | set(EKMAN)):
        at = text.find(f'"{group}"')
        row = text.count("\n", 0, at) + 1 if at >= 0 else 0
        if group not in EKMAN:
            problems.append(DataProblem(source, row, group, "unknown Ekman group"))
        elif group not in mapping:
            problems.append(DataProblem(source, row, group, "Ekman group missing"))
        elif not _same_members(mapping[group], EKMAN[group]):
            message = f"members {mapping[group]} differ from the expected {list(EKMAN[group])}"
            problems.append(DataProblem(source, row, group, message))
    return problems


def _same_members(members: Any, expected: Sequence[str]) -> bool:
    """`members` is a list of the `expected` names, each once, in any order."""
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        return False
    return sorted(members) == sorted(expected)


def _read_rater_csv(path: Path) -> tuple[RaterRows | None, list[DataProblem]]:
    """A per-rater CSV of the original release (`goemotions_N.csv`, same as Hub config `raw`)."""
    source = str(path)
    problems: list[DataProblem] = []
    header, records = read_csv(path, RATER_COLUMNS, problems)
    if header is None:
        return None, problems
    column = {name: i for i, name in enumerate(header)}
    get_choices = operator.itemgetter(*(column[name] for name in EMOTIONS))
    rows: list[int] = []
    ids: list[str] = []
    rater_ids: list[str] = []
    very_unclear: list[bool] = []
    choices: list[tuple[str, ...]] = []
    for row, record in records:
        cells = get_choices(record)
        if not _BINARY.issuperset(cells):
            problems += [
                DataProblem(source, row, name, f"expected 0 or 1, got '{value}'")
                for name, value in zip(EMOTIONS, cells, strict=True)
                if value not in _BINARY
            ]
        unclear = _BOOLEANS.get(record[column["example_very_unclear"]].strip().lower())
        if unclear is None:
            value = record[column["example_very_unclear"]]
            message = f"expected True or False, got '{value}'"
            problems.append(DataProblem(source, row, "example_very_unclear", message))
        rows.append(row)
        ids.append(record[column["id"]])
        rater_ids.append(record[column["rater_id"]])
        very_unclear.append(bool(unclear))
        choices.append(cells)
    matrix = np.array(choices, dtype="U1").reshape(len(choices), len(EMOTIONS)) == "1"
    table = RaterRows(source, rows, ids, rater_ids, np.array(very_unclear, dtype=bool), matrix)
    return table, problems
