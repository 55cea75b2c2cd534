"""GoEmotions (Demszky et al., ACL 2020) as a multi-label task.

Each doc carries the gold label set after pooling the 27 emotions into the chosen label scheme
and, where per-rater data exists, the fraction of raters who chose each pooled label (the
distribution that the alignment metrics compare with a model's label probabilities).

Data comes from a local copy of the original release or from the Hugging Face Hub. Both are
read into the same intermediate rows (`_SplitRows`, `_RaterRows`), which then go through the
same validation, pooling and doc building; only the reading differs.
"""

import csv
import io
import json
import logging
import operator
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np

from lm_eval_mlc.data._errors import DataProblem, DataValidationError
from lm_eval_mlc.data._local import (
    DATA_DIR_ENV,
    id_list_path,
    lines,
    read_id_list,
    read_text,
    resolve_data_dir,
)
from lm_eval_mlc.data._table import docs_from_columns

logger = logging.getLogger(__name__)

Scheme = Literal["clusters", "full", "ekman"]

HUB_PATH = "google-research-datasets/go_emotions"

#: The 28 GoEmotions classes; a label id is an index into this tuple (emotions.txt order).
EMOTIONS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)  # fmt: skip
NEUTRAL_ID = 27

#: The 7 pooled clusters of Ma, Chochlakis et al. (EMNLP 2025), in their order.
CLUSTERS: dict[str, tuple[str, ...]] = {
    "joy": ("amusement", "excitement", "joy", "love"),
    "optimism": ("desire", "optimism", "caring"),
    "admiration": ("pride", "admiration", "gratitude", "relief", "approval", "realization"),
    "surprise": ("surprise", "confusion", "curiosity"),
    "fear": ("fear", "nervousness"),
    "sadness": ("remorse", "embarrassment", "disappointment", "sadness", "grief"),
    "anger": ("anger", "disgust", "annoyance", "disapproval"),
}

#: The Ekman groups of the release's ekman_mapping.json (keys sorted, members as in the file).
EKMAN: dict[str, tuple[str, ...]] = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": (
        "joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism",
        "relief", "pride", "admiration", "desire", "caring",
    ),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
}  # fmt: skip

_SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
_REQUIRED_FILES = (*_SPLIT_FILES.values(), "emotions.txt")
_RATER_FILES = ("goemotions_1.csv", "goemotions_2.csv", "goemotions_3.csv")
_RATER_COLUMNS = ("id", "rater_id", "example_very_unclear", *EMOTIONS)
_SPLIT_COLUMNS = ("text", "labels", "id")
_BINARY = frozenset({"0", "1"})
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def label_names(scheme: Scheme) -> list[str]:
    """The task's label set for `scheme`, in the order used by `labels` and `annotator_probs`."""
    return list(_groups(scheme))


def load_goemotions(
    *,
    scheme: Scheme = "clusters",
    data_dir: str | os.PathLike[str] | None = None,
    id_subset: str | None = None,
    annotators: bool = True,
    **unused: Any,
) -> datasets.DatasetDict:
    """Load GoEmotions as splits `train`, `validation` and `test` of multi-label docs.

    Docs have `id`, `text`, `labels` (pooled gold label names; [] for neutral),
    `annotator_probs` (per-label fraction of raters, [] without per-rater data) and `n_raters`.

    Data comes from `data_dir`, else `$LM_EVAL_MLC_DATA_DIR`, else the Hub. A data dir is the
    GoEmotions folder or a parent holding `goemotions/`. Per-rater data (`goemotions_{1,2,3}.csv`
    locally, config `raw` on the Hub) is used when present and `annotators` is true.

    `id_subset` (a file with one id per line, or a list name in `paper_id_lists/`) makes `test`
    exactly those ids in list order and drops them from `validation`; `train` is left whole as
    the few-shot pool. Keyword arguments that lm-eval passes from task metadata (`version`,
    `pretrained`, ...) are accepted and ignored.

    Raises `DataValidationError` listing every problem found in the data.
    """
    membership = _membership(scheme)
    ge_dir = resolve_data_dir(
        data_dir, folder="goemotions", required=_REQUIRED_FILES, name="GoEmotions"
    )
    list_path = None if id_subset is None else id_list_path(id_subset, ge_dir)
    if ge_dir is None:
        splits, raters, problems = _read_hub(annotators)
    else:
        logger.info("Loading GoEmotions from %s", ge_dir)
        splits, raters, problems = _read_local(ge_dir, scheme, annotators)

    for split in splits.values():
        problems += _check_split(split)
    problems += _check_disjoint(splits.values())
    for table in raters:
        problems += _check_raters(table)
    known_ids = {doc_id for split in splits.values() for doc_id in split.ids}
    subset: list[str] = []
    if list_path is not None:
        subset, list_problems = read_id_list(list_path, known_ids)
        problems += list_problems
    if problems:
        raise DataValidationError(problems)

    names = label_names(scheme)
    pooled = _pool_raters(raters, membership, len(names), known_ids) if raters else {}
    if list_path is not None:
        splits = _apply_subset(splits, subset)
    return datasets.DatasetDict(
        {name: _build_docs(split, membership, names, pooled) for name, split in splits.items()}
    )


# --- label schemes -------------------------------------------------------------------------


def _groups(scheme: str) -> dict[str, tuple[str, ...]]:
    if scheme == "clusters":
        return CLUSTERS
    if scheme == "ekman":
        return EKMAN
    if scheme == "full":
        return {name: (name,) for name in EMOTIONS if name != EMOTIONS[NEUTRAL_ID]}
    raise ValueError(
        f"unknown GoEmotions scheme {scheme!r}; expected 'clusters', 'full' or 'ekman'"
    )


def _membership(scheme: str) -> list[tuple[int, ...]]:
    """For each emotion id, the indices of the scheme's labels it turns on (none for neutral)."""
    index = {name: i for i, name in enumerate(EMOTIONS)}
    members: list[tuple[int, ...]] = [() for _ in EMOTIONS]
    for label, emotions in enumerate(_groups(scheme).values()):
        for emotion in emotions:
            members[index[emotion]] += (label,)
    return members


# --- intermediate rows, shared by the local and Hub readers ---------------------------------


@dataclass
class _SplitRows:
    """One split as parallel columns; `rows` are the 1-based rows used in error reports."""

    source: str
    rows: list[int]
    texts: list[str]
    label_ids: list[list[int] | None]  # None: unparsable, already reported
    ids: list[str]


@dataclass
class _RaterRows:
    """Per-rater rows: one rater's choices for one text; `choices` is (n, 28) bool."""

    source: str
    rows: list[int]
    ids: list[str]
    rater_ids: list[str]
    very_unclear: np.ndarray
    choices: np.ndarray


def _check_split(split: _SplitRows) -> list[DataProblem]:
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


def _check_disjoint(splits: Iterable[_SplitRows]) -> list[DataProblem]:
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


def _check_raters(table: _RaterRows) -> list[DataProblem]:
    """Rater rows without a text id or rater id."""
    problems: list[DataProblem] = []
    for row, doc_id, rater_id in zip(table.rows, table.ids, table.rater_ids, strict=True):
        if not doc_id.strip():
            problems.append(DataProblem(table.source, row, "id", "empty id"))
        if not rater_id.strip():
            problems.append(DataProblem(table.source, row, "rater_id", "empty rater_id"))
    return problems


def _missing_columns(
    columns: Sequence[str], required: Sequence[str], source: str, row: int
) -> list[DataProblem]:
    present = set(columns)
    return [
        DataProblem(source, row, name, "missing required column")
        for name in required
        if name not in present
    ]


def _pool_raters(
    tables: Sequence[_RaterRows],
    membership: Sequence[tuple[int, ...]],
    n_labels: int,
    known_ids: set[str],
) -> dict[str, tuple[list[float], int]]:
    """Per text id: fraction of its raters whose choices turn each label on, and rater count.

    Raters who flagged the example as very unclear chose no emotions (the release records them
    with all-zero labels), so they are left out rather than counted as choosing neutral. A
    rater who chose only neutral, or nothing, counts with an empty label set.
    """
    ids = np.array([doc_id for table in tables for doc_id in table.ids], dtype=object)
    choices = np.concatenate([table.choices for table in tables])
    very_unclear = np.concatenate([table.very_unclear for table in tables])
    known = np.fromiter((doc_id in known_ids for doc_id in ids), dtype=bool, count=len(ids))
    if not known.all():
        unknown = ids[~known]
        logger.info(
            "Ignored %d rater rows for %d ids that are in no split",
            len(unknown),
            len(set(unknown)),
        )

    pool = np.zeros((len(EMOTIONS), n_labels), dtype=np.int32)
    for emotion, labels in enumerate(membership):
        pool[emotion, list(labels)] = 1

    keep = known & ~very_unclear
    pooled = (choices[keep].astype(np.int32) @ pool) > 0
    uniq, inverse = np.unique(ids[keep].astype(str), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(uniq))
    totals = np.stack(
        [np.bincount(inverse, weights=pooled[:, k], minlength=len(uniq)) for k in range(n_labels)],
        axis=1,
    )
    fractions = totals / np.maximum(counts, 1)[:, None]
    return {
        doc_id: (fraction.tolist(), int(count))
        for doc_id, fraction, count in zip(uniq.tolist(), fractions, counts, strict=True)
    }


def _build_docs(
    split: _SplitRows,
    membership: Sequence[tuple[int, ...]],
    names: Sequence[str],
    pooled: dict[str, tuple[list[float], int]],
) -> datasets.Dataset:
    labels: list[list[str]] = []
    probs: list[list[float]] = []
    n_raters: list[int] = []
    for doc_id, label_ids in zip(split.ids, split.label_ids, strict=True):
        on = {label for emotion in label_ids or () for label in membership[emotion]}
        labels.append([names[label] for label in sorted(on)])
        fractions, count = pooled.get(doc_id, ([], 0))
        probs.append(fractions)
        n_raters.append(count)
    return docs_from_columns(
        {
            "id": split.ids,
            "text": split.texts,
            "labels": labels,
            "annotator_probs": probs,
            "n_raters": n_raters,
        }
    )


# --- id subsets ------------------------------------------------------------------------------


def _apply_subset(splits: dict[str, _SplitRows], ids: list[str]) -> dict[str, _SplitRows]:
    """`test` := the listed ids in list order; `validation` drops them; `train` is unchanged."""
    found: dict[str, tuple[_SplitRows, int]] = {}
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


def _pick(source: str, picks: Iterable[tuple[_SplitRows, int]]) -> _SplitRows:
    """A new split made of the given (split, index) rows, in order."""
    picked = _SplitRows(source, [], [], [], [])
    for split, i in picks:
        picked.rows.append(split.rows[i])
        picked.texts.append(split.texts[i])
        picked.label_ids.append(split.label_ids[i])
        picked.ids.append(split.ids[i])
    return picked


# --- local files -----------------------------------------------------------------------------


def _read_local(
    ge_dir: Path, scheme: str, annotators: bool
) -> tuple[dict[str, _SplitRows], list[_RaterRows], list[DataProblem]]:
    problems = _check_emotions_file(ge_dir / "emotions.txt")
    ekman_path = ge_dir / "ekman_mapping.json"
    if scheme == "ekman" and ekman_path.is_file():
        problems += _check_ekman_file(ekman_path)
    splits: dict[str, _SplitRows] = {}
    for name, file_name in _SPLIT_FILES.items():
        splits[name], split_problems = _read_split_tsv(ge_dir / file_name)
        problems += split_problems
    raters: list[_RaterRows] = []
    if annotators:
        for file_name in _RATER_FILES:
            if (ge_dir / file_name).is_file():
                table, table_problems = _read_rater_csv(ge_dir / file_name)
                problems += table_problems
                if table is not None:
                    raters.append(table)
    return splits, raters, problems


def _read_split_tsv(path: Path) -> tuple[_SplitRows, list[DataProblem]]:
    """A headerless `text<TAB>label ids<TAB>id` file; text is unquoted and may hold quotes."""
    source = str(path)
    split = _SplitRows(source, [], [], [], [])
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


def _read_rater_csv(path: Path) -> tuple[_RaterRows | None, list[DataProblem]]:
    """A per-rater CSV of the original release (`goemotions_N.csv`, same as Hub config `raw`)."""
    source = str(path)
    problems: list[DataProblem] = []
    with io.StringIO(read_text(path, problems), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return None, [DataProblem(source, 0, "columns", "empty file; expected a header")]
        missing = _missing_columns(header, _RATER_COLUMNS, source, 1)
        if missing:
            return None, [*problems, *missing]
        column = {name: i for i, name in enumerate(header)}
        get_choices = operator.itemgetter(*(column[name] for name in EMOTIONS))
        rows: list[int] = []
        ids: list[str] = []
        rater_ids: list[str] = []
        very_unclear: list[bool] = []
        choices: list[tuple[str, ...]] = []
        end = reader.line_num
        for record in reader:
            # Quoted text may span lines; report the line the record starts on.
            row, end = end + 1, reader.line_num
            if len(record) != len(header):
                message = f"expected {len(header)} comma-separated fields, got {len(record)}"
                problems.append(DataProblem(source, row, "columns", message))
                continue
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
    table = _RaterRows(source, rows, ids, rater_ids, np.array(very_unclear, dtype=bool), matrix)
    return table, problems


# --- Hugging Face Hub ------------------------------------------------------------------------


def _read_hub(
    annotators: bool,
) -> tuple[dict[str, _SplitRows], list[_RaterRows], list[DataProblem]]:
    logger.info("Loading GoEmotions from the Hugging Face Hub (%s)", HUB_PATH)
    try:
        simplified = datasets.load_dataset(HUB_PATH, "simplified")
    except Exception as err:
        err.add_note(f"For local GoEmotions files pass data_dir=... or set ${DATA_DIR_ENV}.")
        raise
    splits: dict[str, _SplitRows] = {}
    problems: list[DataProblem] = []
    for name in _SPLIT_FILES:
        splits[name], split_problems = _hub_split(
            simplified[name], f"{HUB_PATH}[simplified/{name}]"
        )
        problems += split_problems
    raters: list[_RaterRows] = []
    if annotators:
        try:
            raw = datasets.load_dataset(HUB_PATH, "raw")["train"]
        except Exception as err:  # network, auth, cache: per-rater data is optional
            logger.warning("No per-rater data: could not load %s config 'raw' (%s)", HUB_PATH, err)
        else:
            table, table_problems = _hub_raters(raw, f"{HUB_PATH}[raw/train]")
            problems += table_problems
            if table is not None:
                raters.append(table)
    return splits, raters, problems


def _hub_split(ds: datasets.Dataset, source: str) -> tuple[_SplitRows, list[DataProblem]]:
    """A `simplified` split; its label names must be the release's emotions in order."""
    problems = _missing_columns(ds.column_names, _SPLIT_COLUMNS, source, 0)
    if problems:
        return _SplitRows(source, [], [], [], []), problems
    names = getattr(getattr(ds.features["labels"], "feature", None), "names", None)
    if names is not None and tuple(names) != EMOTIONS:
        message = f"label names {names} differ from the GoEmotions emotions {list(EMOTIONS)}"
        problems.append(DataProblem(source, 0, "labels", message))
    batch = ds.select_columns(list(_SPLIT_COLUMNS))[:]
    return _SplitRows(
        source=source,
        rows=list(range(1, len(ds) + 1)),
        texts=batch["text"],
        label_ids=[list(ids) for ids in batch["labels"]],
        ids=batch["id"],
    ), problems


def _hub_raters(ds: datasets.Dataset, source: str) -> tuple[_RaterRows | None, list[DataProblem]]:
    """The `raw` config: one row per rater and text, emotions as 0/1 int (or bool) columns."""
    problems = _missing_columns(ds.column_names, _RATER_COLUMNS, source, 0)
    if problems:
        return None, problems
    batch = ds.select_columns(list(_RATER_COLUMNS))[:]
    values = np.array([batch[name] for name in EMOTIONS], dtype=np.int64).T
    for i, j in np.argwhere((values != 0) & (values != 1)).tolist():
        message = f"expected 0 or 1, got {values[i, j]}"
        problems.append(DataProblem(source, i + 1, EMOTIONS[j], message))
    table = _RaterRows(
        source=source,
        rows=list(range(1, len(ds) + 1)),
        ids=batch["id"],
        rater_ids=["" if r is None else str(r) for r in batch["rater_id"]],
        very_unclear=np.array(batch["example_very_unclear"], dtype=bool),
        choices=values == 1,
    )
    return table, problems
