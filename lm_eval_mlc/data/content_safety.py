"""Prompts labelled with Llama Guard 3 hazard categories (the marginalisation study's data).

Every row is an unsafe prompt with 2 or 3 of the categories S1-S14; there are no safe rows and
no annotator-level labels. The release has a single file, so the loader makes a deterministic
split: a prompt goes to `train` when the SHA-256 of its text is 0 mod 10, to `validation` when
it is 1 mod 10, and to `test` otherwise (about 10/10/80%). Hashing the text, not the line,
keeps the split stable if the file is reordered and keeps the one duplicated prompt in one
split. The texts are deliberately offensive: nothing here logs them.
"""

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import datasets

from lm_eval_mlc.data._errors import DataProblem, DataValidationError
from lm_eval_mlc.data._local import resolve_data_dir
from lm_eval_mlc.data._records import lines
from lm_eval_mlc.data._table import docs_from_columns

logger = logging.getLogger(__name__)

FILE = "content_moderation_lm3.jsonl"

#: Llama Guard 3's hazard categories (its model card's names), in label order.
CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}

_SPLITS = ("train", "validation", "test")
_DESCRIPTIONS = {"label_descriptions": datasets.Sequence(datasets.Value("string"))}


def label_names() -> list[str]:
    """`S1` ... `S14`, in the order of `labels`."""
    return list(CATEGORIES)


def split_of(text: str) -> str:
    """The split a prompt belongs to (see the module docstring)."""
    bucket = int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % 10
    return _SPLITS[min(bucket, 2)]


def load_content_safety(
    *, data_dir: str | os.PathLike[str] | None = None, **unused: Any
) -> datasets.DatasetDict:
    """Load the Llama Guard 3 category data as splits `train`, `validation` and `test`.

    Docs have `id` (`lg3-<line>`), `text` (the prompt), `labels` (categories in S1..S14
    order), `annotator_probs` ([]), `n_raters` (0) and `label_descriptions` (the category
    names, for the prompt). Data comes from `data_dir`, else `$LM_EVAL_MLC_DATA_DIR` (the
    folder or a parent holding `content_safety_llamaguard3/`). Other keyword arguments (task
    metadata) are ignored.

    Raises `DataValidationError` listing every problem found in the data.
    """
    folder = resolve_data_dir(
        data_dir, folder="content_safety_llamaguard3", required=(FILE,), name="Content safety"
    )
    if folder is None:
        raise FileNotFoundError(
            f"The Llama Guard 3 category data is read from a local {FILE}: pass data_dir=... "
            "or set $LM_EVAL_MLC_DATA_DIR"
        )
    logger.info("Loading Llama Guard 3 category data from %s", folder)
    columns, problems = _read_jsonl(folder / FILE)
    if problems:
        raise DataValidationError(problems)
    descriptions = list(CATEGORIES.values())
    splits: dict[str, dict[str, list[Any]]] = {
        name: {key: [] for key in ("id", "text", "labels")} for name in _SPLITS
    }
    for doc_id, text, labels in zip(columns["id"], columns["text"], columns["labels"], strict=True):
        split = splits[split_of(text)]
        split["id"].append(doc_id)
        split["text"].append(text)
        split["labels"].append(labels)
    return datasets.DatasetDict(
        {
            name: docs_from_columns(
                {
                    **split,
                    "annotator_probs": [[]] * len(split["id"]),
                    "n_raters": [0] * len(split["id"]),
                    "label_descriptions": [descriptions] * len(split["id"]),
                },
                _DESCRIPTIONS,
            )
            for name, split in splits.items()
        }
    )


def _read_jsonl(path: Path) -> tuple[dict[str, list[Any]], list[DataProblem]]:
    """Rows `{"unsafe_query": str, "llama_guard_3_categories": [str, ...]}`, one per line."""
    source = str(path)
    order = {name: i for i, name in enumerate(CATEGORIES)}
    columns: dict[str, list[Any]] = {"id": [], "text": [], "labels": []}
    problems: list[DataProblem] = []
    for row, line in enumerate(lines(path, problems), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(DataProblem(source, row, "json", err.msg))
            continue
        if not isinstance(record, dict):
            problems.append(DataProblem(source, row, "json", "expected an object"))
            continue
        text = record.get("unsafe_query")
        if not isinstance(text, str) or not text.strip():
            problems.append(DataProblem(source, row, "unsafe_query", "expected non-empty text"))
        categories = record.get("llama_guard_3_categories")
        if not isinstance(categories, list):
            message = 'expected a list of categories such as ["S1", "S10"]'
            problems.append(DataProblem(source, row, "llama_guard_3_categories", message))
            continue
        unknown = [c for c in categories if not isinstance(c, str) or c not in order]
        if unknown:
            message = f"unknown categories {unknown}; expected S1..S14"
            problems.append(DataProblem(source, row, "llama_guard_3_categories", message))
        elif len(set(categories)) != len(categories):
            message = f"repeated categories in {categories}"
            problems.append(DataProblem(source, row, "llama_guard_3_categories", message))
        elif isinstance(text, str):
            columns["id"].append(f"lg3-{row}")
            columns["text"].append(text)
            columns["labels"].append(sorted(categories, key=order.__getitem__))
    return columns, problems
