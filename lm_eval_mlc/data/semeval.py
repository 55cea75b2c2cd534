"""SemEval-2018 Task 1 subtask E-c, English (Mohammad et al., 2018) as a multi-label task.

Eleven emotions per tweet; a tweet with none is "neutral or no emotion" and gets no labels.
Labels are aggregated (an emotion is on when at least 2 of 7 annotators inferred it), so docs
carry no annotator distribution. Evaluation uses the test-gold split.

Data comes from the original TSV files (`2018-E-c-En-{train,dev,test-gold}.txt`) or the
Hugging Face Hub; both are read into the same `_Split` rows and validated the same way.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from lm_eval_mlc.data._errors import DataProblem, DataValidationError
from lm_eval_mlc.data._local import apply_id_subset, id_list_path, read_id_list, resolve_data_dir
from lm_eval_mlc.data._records import lines, missing_columns
from lm_eval_mlc.data._table import docs_from_columns, indicator_labels

logger = logging.getLogger(__name__)

HUB_PATH = "SemEvalWorkshop/sem_eval_2018_task_1"
HUB_CONFIG = "subtask5.english"

#: The 11 emotions in the files' column order.
EMOTIONS: tuple[str, ...] = (
    "anger", "anticipation", "disgust", "fear", "joy", "love", "optimism", "pessimism",
    "sadness", "surprise", "trust",
)  # fmt: skip

_SPLIT_FILES = {
    "train": "2018-E-c-En-train.txt",
    "validation": "2018-E-c-En-dev.txt",
    "test": "2018-E-c-En-test-gold.txt",
}
_HEADER = ("ID", "Tweet", *EMOTIONS)
_BINARY = frozenset({"0", "1"})


@dataclass
class _Split:
    """One split as parallel columns; `rows` are the 1-based rows used in error reports."""

    source: str
    rows: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    flags: list[list[int]] = field(default_factory=list)


def label_names() -> list[str]:
    """The 11 emotions, in the order of `labels`."""
    return list(EMOTIONS)


def load_semeval2018_ec(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    id_subset: str | None = None,
    **unused: Any,
) -> datasets.DatasetDict:
    """Load SemEval-2018 E-c English as splits `train`, `validation` (dev) and `test` (gold).

    Docs have `id`, `text`, `labels` (emotion names; [] for neutral), `annotator_probs` ([])
    and `n_raters` (0). Data comes from `data_dir`, else `$LM_EVAL_MLC_DATA_DIR` (the folder or
    a parent holding `semeval2018_ec/`), else the Hub (`SemEvalWorkshop/sem_eval_2018_task_1`,
    config `subtask5.english`).

    `id_subset` (a file with one id per line, or a list name in `paper_id_lists/`, such as the
    study's `main_test_set` of 185 dev tweets) makes `test` exactly those ids in list order and
    drops them from `validation`. Other keyword arguments (task metadata) are ignored.

    Raises `DataValidationError` listing every problem found in the data.
    """
    se_dir = resolve_data_dir(
        data_dir, folder="semeval2018_ec", required=tuple(_SPLIT_FILES.values()), name="SemEval"
    )
    list_path = None if id_subset is None else id_list_path(id_subset, se_dir)
    if se_dir is None:
        splits, problems = _read_hub()
    else:
        logger.info("Loading SemEval-2018 E-c from %s", se_dir)
        splits, problems = {}, []
        for name, file_name in _SPLIT_FILES.items():
            splits[name], split_problems = _read_tsv(se_dir / file_name)
            problems += split_problems
    problems += _check_ids(splits.values())
    subset: list[str] = []
    if list_path is not None:
        known = {doc_id for split in splits.values() for doc_id in split.ids}
        subset, list_problems = read_id_list(list_path, known)
        problems += list_problems
    if problems:
        raise DataValidationError(problems)
    data = datasets.DatasetDict({name: _docs(split) for name, split in splits.items()})
    return data if list_path is None else apply_id_subset(data, subset)


def _docs(split: _Split) -> datasets.Dataset:
    n = len(split.ids)
    return docs_from_columns(
        {
            "id": split.ids,
            "text": split.texts,
            "labels": indicator_labels(split.flags, EMOTIONS),
            "annotator_probs": [[]] * n,
            "n_raters": [0] * n,
        }
    )


def _check_ids(splits: Any) -> list[DataProblem]:
    """Empty ids, and ids repeated within or across splits."""
    problems: list[DataProblem] = []
    first: dict[str, tuple[str, int]] = {}
    for split in splits:
        for row, doc_id in zip(split.rows, split.ids, strict=True):
            if not doc_id.strip():
                problems.append(DataProblem(split.source, row, "ID", "empty id"))
                continue
            source, first_row = first.setdefault(doc_id, (split.source, row))
            if (source, first_row) != (split.source, row):
                where = f"row {first_row}"
                if source != split.source:
                    where = f"{source} {where}"
                message = f"duplicate id '{doc_id}' (first on {where})"
                problems.append(DataProblem(split.source, row, "ID", message))
    return problems


def _read_tsv(path: Path) -> tuple[_Split, list[DataProblem]]:
    """A TSV with header `ID, Tweet, <11 emotions>` and 0/1 cells; CRLF or LF line ends."""
    source = str(path)
    split = _Split(source)
    problems: list[DataProblem] = []
    rows = lines(path, problems)
    header = tuple(rows[0].split("\t")) if rows else ()
    if header != _HEADER:
        message = f"expected the header {'<TAB>'.join(_HEADER)}, got {'<TAB>'.join(header)!r}"
        return split, [*problems, DataProblem(source, 1, "header", message)]
    for row, line in enumerate(rows[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(_HEADER):
            message = f"expected {len(_HEADER)} tab-separated fields, got {len(fields)}"
            problems.append(DataProblem(source, row, "columns", message))
            continue
        doc_id, text, *cells = fields
        problems += [
            DataProblem(source, row, name, f"expected 0 or 1, got '{cell}'")
            for name, cell in zip(EMOTIONS, cells, strict=True)
            if cell not in _BINARY
        ]
        if not text.strip():
            problems.append(DataProblem(source, row, "Tweet", "empty text"))
        split.rows.append(row)
        split.ids.append(doc_id)
        split.texts.append(text)
        split.flags.append([int(cell == "1") for cell in cells])
    return split, problems


def _read_hub() -> tuple[dict[str, _Split], list[DataProblem]]:
    logger.info("Loading SemEval-2018 E-c from the Hugging Face Hub (%s)", HUB_PATH)
    try:
        data = datasets.load_dataset(HUB_PATH, HUB_CONFIG)
    except Exception as err:
        err.add_note("For local SemEval-2018 files pass data_dir=... or set $LM_EVAL_MLC_DATA_DIR.")
        raise
    splits: dict[str, _Split] = {}
    problems: list[DataProblem] = []
    for name in _SPLIT_FILES:
        source = f"{HUB_PATH}[{HUB_CONFIG}/{name}]"
        split = _Split(source)
        ds = data[name]
        missing = missing_columns(ds.column_names, _HEADER, source, 0)
        problems += missing
        if not missing:
            batch = ds.select_columns(list(_HEADER))[:]
            split.rows = list(range(1, len(ds) + 1))
            split.ids = [str(doc_id) for doc_id in batch["ID"]]
            split.texts = batch["Tweet"]
            split.flags = [[int(batch[name][i]) for name in EMOTIONS] for i in range(len(ds))]
            for row, text in zip(split.rows, split.texts, strict=True):
                if not (text or "").strip():
                    problems.append(DataProblem(source, row, "Tweet", "empty text"))
        splits[name] = split
    return splits, problems
