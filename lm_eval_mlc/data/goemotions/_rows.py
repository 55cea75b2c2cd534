"""The intermediate rows that the local and Hub readers both produce, their checks and id subsets.

Both readers fill the same `SplitRows` and `RaterRows`, so validation, pooling and doc building
do not depend on where the data came from.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from lm_eval_mlc.data._errors import DataProblem
from lm_eval_mlc.data.goemotions.labels import EMOTIONS, NEUTRAL_ID

#: The per-rater columns read, locally (`goemotions_N.csv`) and from Hub config `raw` alike.
RATER_COLUMNS = ("id", "rater_id", "example_very_unclear", *EMOTIONS)


@dataclass
class SplitRows:
    """One split as parallel columns; `rows` are the 1-based rows used in error reports."""

    source: str
    rows: list[int]
    texts: list[str]
    label_ids: list[list[int] | None]  # None: unparsable, already reported
    ids: list[str]


@dataclass
class RaterRows:
    """Per-rater rows: one rater's choices for one text; `choices` is (n, 28) bool."""

    source: str
    rows: list[int]
    ids: list[str]
    rater_ids: list[str]
    very_unclear: np.ndarray
    choices: np.ndarray


def check_split(split: SplitRows) -> list[DataProblem]:
    """Empty text or id, missing or out-of-range label ids, duplicate ids within the split."""
    problems: list[DataProblem] = []
    first_row: dict[str, int] = {}
    for row, text, label_ids, doc_id in zip(
        split.rows, split.texts, split.label_ids, split.ids, strict=True
    ):
        if not text.strip():
            problems.append(DataProblem(split.source, row, "text", "empty text"))
        if label_ids is not None:
            if not label_ids:
                message = "no label ids (a text with no emotion is labelled 27 = neutral)"
                problems.append(DataProblem(split.source, row, "labels", message))
            bad = [i for i in label_ids if not 0 <= i < len(EMOTIONS)]
            if bad:
                message = f"label id {', '.join(map(str, bad))} out of range 0..{NEUTRAL_ID}"
                problems.append(DataProblem(split.source, row, "labels", message))
        if not doc_id.strip():
            problems.append(DataProblem(split.source, row, "id", "empty id"))
        elif doc_id in first_row:
            message = f"duplicate id '{doc_id}' (first on row {first_row[doc_id]})"
            problems.append(DataProblem(split.source, row, "id", message))
        else:
            first_row[doc_id] = row
    return problems


def check_disjoint(splits: Iterable[SplitRows]) -> list[DataProblem]:
    """Ids that occur in more than one split."""
    problems: list[DataProblem] = []
    first: dict[str, tuple[str, int]] = {}
    for split in splits:
        for row, doc_id in zip(split.rows, split.ids, strict=True):
            other = first.setdefault(doc_id, (split.source, row))
            if other[0] != split.source:
                message = f"id '{doc_id}' is also in {other[0]} (row {other[1]})"
                problems.append(DataProblem(split.source, row, "id", message))
    return problems


def check_raters(table: RaterRows) -> list[DataProblem]:
    """Rater rows without a text id or rater id."""
    problems: list[DataProblem] = []
    for row, doc_id, rater_id in zip(table.rows, table.ids, table.rater_ids, strict=True):
        if not doc_id.strip():
            problems.append(DataProblem(table.source, row, "id", "empty id"))
        if not rater_id.strip():
            problems.append(DataProblem(table.source, row, "rater_id", "empty rater_id"))
    return problems


def apply_subset(splits: dict[str, SplitRows], ids: list[str]) -> dict[str, SplitRows]:
    """`test` := the listed ids in list order; `validation` drops them; `train` is unchanged."""
    found: dict[str, tuple[SplitRows, int]] = {}
    for split in splits.values():
        for i, doc_id in enumerate(split.ids):
            found.setdefault(doc_id, (split, i))
    listed = set(ids)
    validation = splits["validation"]
    kept = [(validation, i) for i, doc_id in enumerate(validation.ids) if doc_id not in listed]
    return {
        "train": splits["train"],
        "validation": _pick(validation.source, kept),
        "test": _pick("id_subset", [found[doc_id] for doc_id in ids]),
    }


def _pick(source: str, picks: Iterable[tuple[SplitRows, int]]) -> SplitRows:
    """A new split made of the given (split, index) rows, in order."""
    picked = SplitRows(source, [], [], [], [])
    for split, i in picks:
        picked.rows.append(split.rows[i])
        picked.texts.append(split.texts[i])
        picked.label_ids.append(split.label_ids[i])
        picked.ids.append(split.ids[i])
    return picked
