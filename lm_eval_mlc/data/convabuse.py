"""ConvAbuse (Cercas Curry, Abercrombie & Rieser, EMNLP 2021) as an annotator-level task.

An item is a user turn judged in its conversational context: conversation id, the agent's and
user's previous turns, the agent's turn and the judged user turn. Each doc carries, for the 7
abuse types, the fraction of the item's annotators who chose it (from the one-row-per-response
`ConvAbuseEMNLPfull.csv`) and, as gold, the types a strict majority chose.

Policies:
- Every annotator counts once. 311 items were shown to the same annotator more than once (to
  measure intra-annotator agreement); such an annotator contributes the mean of their repeated
  responses, so a repeat neither doubles a vote nor drops the disagreement (6 repeats differ).
- Annotators who judged the turn not abusive gave no types; they count with an empty set.
- Gold is a strict majority (fraction > 0.5): one of two annotators is not a majority.
- The split files (`ConvAbuseEMNLP{train,valid,test}.csv`, one row per item) decide the split
  and give the doc id (`example_id`). Their turns were re-capitalised by a spreadsheet ("Yes"
  for "yes"), which makes 4 items collide, so an item is matched to its split row by its
  case-folded turns plus the set of annotators who judged it; that match is one to one.
"""

import logging
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from lm_eval_mlc.data._errors import DataProblem, DataValidationError
from lm_eval_mlc.data._local import resolve_data_dir
from lm_eval_mlc.data._records import read_csv
from lm_eval_mlc.data._table import docs_from_columns, indicator_labels

logger = logging.getLogger(__name__)

#: The 7 abuse types, in the order of the full file's `type.*` columns.
ABUSE_TYPES: tuple[str, ...] = (
    "ableism", "homophobic", "intellectual", "racist", "sexist", "sex_harassment", "transphobic",
)  # fmt: skip

FULL_FILE = "ConvAbuseEMNLPfull.csv"
_SPLIT_FILES = {
    "train": "ConvAbuseEMNLPtrain.csv",
    "validation": "ConvAbuseEMNLPvalid.csv",
    "test": "ConvAbuseEMNLPtest.csv",
}
_TURNS = ("conv_id", "prev_agent", "prev_user", "agent", "user")
_TYPE_COLUMNS = tuple(f"type.{name}" for name in ABUSE_TYPES)
_FULL_COLUMNS = ("annotator_id", *_TURNS, "bot", *_TYPE_COLUMNS)
_SPLIT_COLUMNS = ("example_id", *_TURNS)
_SPLIT_ANNOTATOR = re.compile(r"(.+)_is_abuse\.-?\d")
_BINARY = frozenset({"0", "1"})

_EXTRA = {
    name: datasets.Value("string")
    for name in ("conv_id", "bot", "prev_agent", "prev_user", "agent")
}

Turns = tuple[str, ...]
MatchKey = tuple[Turns, frozenset[str]]


@dataclass
class _Item:
    """One item of the full file: its first row and each annotator's responses (0/1 rows)."""

    row: int
    bot: str
    responses: dict[str, list[list[int]]] = field(default_factory=lambda: defaultdict(list))

    def key(self, turns: Turns) -> MatchKey:
        return tuple(t.casefold() for t in turns), frozenset(self.responses)


def label_names() -> list[str]:
    """The 7 abuse types, in the order of `labels` and `annotator_probs`."""
    return list(ABUSE_TYPES)


def load_convabuse(
    *, data_dir: str | os.PathLike[str] | None = None, **unused: Any
) -> datasets.DatasetDict:
    """Load ConvAbuse as splits `train`, `validation` and `test` of annotator-level docs.

    Docs have `id` (the split files' example_id), `text` (the judged user turn), `labels`
    (majority abuse types), `annotator_probs` (fraction of annotators per type), `n_raters`
    (distinct annotators) and the context columns `conv_id`, `bot`, `prev_agent`, `prev_user`
    and `agent`. Data comes from `data_dir`, else `$LM_EVAL_MLC_DATA_DIR` (the folder or a
    parent holding `convabuse/`); ConvAbuse is not on the Hub. Other keyword arguments (task
    metadata) are ignored.

    Raises `DataValidationError` listing every problem found in the data.
    """
    ca_dir = resolve_data_dir(
        data_dir,
        folder="convabuse",
        required=(FULL_FILE, *_SPLIT_FILES.values()),
        name="ConvAbuse",
    )
    if ca_dir is None:
        raise FileNotFoundError(
            "ConvAbuse is read from local files: pass data_dir=... (the folder holding "
            f"{FULL_FILE} and the split files) or set $LM_EVAL_MLC_DATA_DIR"
        )
    logger.info("Loading ConvAbuse from %s", ca_dir)
    items, problems = _read_full(ca_dir / FULL_FILE)
    by_key = {item.key(turns): turns for turns, item in (items or {}).items()}
    assigned: dict[str, list[tuple[str, Turns]]] = {}
    seen: dict[Turns, tuple[str, int]] = {}
    first_id: dict[str, tuple[str, int]] = {}
    all_read = items is not None
    for split, file_name in _SPLIT_FILES.items():
        rows, split_problems = _read_split(ca_dir / file_name)
        problems += split_problems
        assigned[split] = []
        all_read &= rows is not None
        for row, doc_id, key in rows or ():
            source = str(ca_dir / file_name)
            turns = by_key.get(key)
            other = first_id.setdefault(doc_id, (source, row))
            if other != (source, row):
                message = f"duplicate example_id '{doc_id}' (first in {other[0]} row {other[1]})"
                problems.append(DataProblem(source, row, "example_id", message))
            if items is None:  # the full file is unreadable: nothing to match against
                continue
            if turns is None:
                message = f"no item of {FULL_FILE} has these turns and annotators"
                problems.append(DataProblem(source, row, "example_id", message))
            elif turns in seen:
                message = f"item already in {seen[turns][0]} row {seen[turns][1]}"
                problems.append(DataProblem(source, row, "example_id", message))
            else:
                seen[turns] = (source, row)
                assigned[split].append((doc_id, turns))
    # Items of an unreadable split file would all be "in no split": leave them unreported.
    for turns, item in items.items() if all_read else ():
        if turns not in seen and by_key[item.key(turns)] == turns:
            message = "item (conv_id + turns) is in no split file"
            problems.append(DataProblem(str(ca_dir / FULL_FILE), item.row, "conv_id", message))
    if problems:
        raise DataValidationError(problems)
    return datasets.DatasetDict({split: _docs(assigned[split], items) for split in _SPLIT_FILES})


def annotator_fractions(responses: dict[str, list[list[int]]]) -> np.ndarray:
    """Per type, the fraction of annotators who chose it; repeats are averaged per annotator."""
    per_annotator = [np.mean(rows, axis=0) for rows in responses.values()]
    return np.mean(per_annotator, axis=0)


def _docs(assigned: Sequence[tuple[str, Turns]], items: dict[Turns, _Item]) -> datasets.Dataset:
    fractions = [annotator_fractions(items[turns].responses) for _, turns in assigned]
    columns: dict[str, list[Any]] = {
        "id": [doc_id for doc_id, _ in assigned],
        "text": [turns[4] for _, turns in assigned],
        "labels": indicator_labels([f > 0.5 for f in fractions], ABUSE_TYPES),
        "annotator_probs": [f.tolist() for f in fractions],
        "n_raters": [len(items[turns].responses) for _, turns in assigned],
        "bot": [items[turns].bot for _, turns in assigned],
    }
    for i, name in enumerate(_TURNS[:4]):
        columns[name] = [turns[i] for _, turns in assigned]
    return docs_from_columns(columns, _EXTRA)


def _read_full(path: Path) -> tuple[dict[Turns, _Item] | None, list[DataProblem]]:
    """Items in file order, each with its annotators' 0/1 type responses (None: unreadable)."""
    source = str(path)
    problems: list[DataProblem] = []
    header, records = read_csv(path, _FULL_COLUMNS, problems)
    if header is None:
        return None, problems
    items: dict[Turns, _Item] = {}
    column = {name: i for i, name in enumerate(header)}
    for row, record in records:
        cells = [record[column[name]] for name in _TYPE_COLUMNS]
        bad = [(n, c) for n, c in zip(_TYPE_COLUMNS, cells, strict=True) if c not in _BINARY]
        problems += [DataProblem(source, row, n, f"expected 0 or 1, got '{c}'") for n, c in bad]
        annotator = record[column["annotator_id"]].strip()
        if not annotator:
            problems.append(DataProblem(source, row, "annotator_id", "empty annotator_id"))
        turns = tuple(record[column[name]] for name in _TURNS)
        for name, turn in zip(_TURNS, turns, strict=True):
            if name in ("conv_id", "user") and not turn.strip():
                problems.append(DataProblem(source, row, name, f"empty {name}"))
        if bad or not annotator:
            continue
        item = items.setdefault(turns, _Item(row, record[column["bot"]]))
        item.responses[annotator].append([int(c) for c in cells])
    return items, problems


def _read_split(path: Path) -> tuple[list[tuple[int, str, MatchKey]] | None, list[DataProblem]]:
    """(row, example_id, match key) per item row (None: unreadable); annotators are those with
    an is_abuse cell."""
    source = str(path)
    problems: list[DataProblem] = []
    header, records = read_csv(path, _SPLIT_COLUMNS, problems)
    if header is None:
        return None, problems
    rows: list[tuple[int, str, MatchKey]] = []
    column = {name: i for i, name in enumerate(header)}
    abuse_columns = defaultdict(list)
    for i, name in enumerate(header):
        if match := _SPLIT_ANNOTATOR.fullmatch(name):
            abuse_columns[match.group(1)].append(i)
    for row, record in records:
        doc_id = record[column["example_id"]].strip().removesuffix(".0")
        if not doc_id:
            problems.append(DataProblem(source, row, "example_id", "empty example_id"))
            continue
        annotators = frozenset(
            name for name, idx in abuse_columns.items() if any(record[i].strip() for i in idx)
        )
        turns = tuple(record[column[name]].casefold() for name in _TURNS)
        rows.append((row, doc_id, (turns, annotators)))
    return rows, problems
