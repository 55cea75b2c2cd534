"""Shared pieces of the local-file loaders: data dir resolution and id subsets."""

import os
import re
from collections.abc import Sequence
from pathlib import Path

import datasets

from lm_eval_mlc.data._errors import DataProblem
from lm_eval_mlc.data._records import read_text

DATA_DIR_ENV = "LM_EVAL_MLC_DATA_DIR"

# A bare id-list name (looked up in paper_id_lists/); anything else is a path.
_LIST_NAME = re.compile(r"[\w-]+")


def resolve_data_dir(
    data_dir: str | os.PathLike[str] | None, *, folder: str, required: Sequence[str], name: str
) -> Path | None:
    """The data set's folder: `data_dir`, else `$LM_EVAL_MLC_DATA_DIR`, else None.

    A data dir is the data set's folder itself or a parent holding `folder/`; it must contain
    every file in `required`.
    """
    origin = "data_dir"
    if not data_dir:  # None, or "" from a task config
        data_dir, origin = os.environ.get(DATA_DIR_ENV), f"${DATA_DIR_ENV}"
    if not data_dir:
        return None
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{name} data dir {root} (from {origin}) does not exist")
    found = root / folder if (root / folder).is_dir() else root
    missing = [file for file in required if not (found / file).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name} data dir {found} (from {origin}) lacks {', '.join(missing)}; expected "
            f"{', '.join(required)} in the folder itself or in its {folder}/ subfolder"
        )
    return found


def id_list_path(id_subset: str, base_dir: Path | None) -> Path:
    """A bare name (letters, digits, '_', '-') is a list in paper_id_lists/; else a path."""
    if _LIST_NAME.fullmatch(id_subset):
        if base_dir is None:
            raise ValueError(
                f"id_subset {id_subset!r} names a list in paper_id_lists/, which needs local "
                f"data (data_dir or ${DATA_DIR_ENV}); with Hub data pass the path of an id "
                "list file instead"
            )
        lists_dir = base_dir / "paper_id_lists"
        path = lists_dir / f"{id_subset}.txt"
        if not path.is_file():
            available = sorted(p.stem for p in lists_dir.glob("*.txt"))
            raise FileNotFoundError(
                f"no id list {path}; lists in {lists_dir}: {', '.join(available) or 'none'}"
            )
        return path
    path = Path(id_subset).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"id_subset file {path} does not exist")
    return path


def read_id_list(path: Path, known: set[str]) -> tuple[list[str], list[DataProblem]]:
    """Ids in list order (blank lines skipped); unknown and repeated ids are problems."""
    ids: list[str] = []
    first_row: dict[str, int] = {}
    problems: list[DataProblem] = []
    text = read_text(path, problems)
    for row, line in enumerate(text.split("\n"), start=1):
        doc_id = line.strip()
        if not doc_id:
            continue
        if doc_id not in known:
            message = f"id '{doc_id}' is not in train, validation or test"
            problems.append(DataProblem(str(path), row, "id", message))
        elif doc_id in first_row:
            message = f"id '{doc_id}' repeated (first on line {first_row[doc_id]})"
            problems.append(DataProblem(str(path), row, "id", message))
        else:
            first_row[doc_id] = row
            ids.append(doc_id)
    return ids, problems


def apply_id_subset(data: datasets.DatasetDict, ids: Sequence[str]) -> datasets.DatasetDict:
    """`test` := the listed docs in list order; `validation` drops them; `train` is unchanged.

    The study's lists are drawn from the dev split, so the validation split (few-shot or
    threshold fitting) must not contain them.
    """
    names = ("train", "validation", "test")
    pooled = datasets.concatenate_datasets([data[name] for name in names])
    position = {doc_id: i for i, doc_id in reversed(list(enumerate(pooled["id"])))}
    listed = set(ids)
    validation = data["validation"]
    keep = [i for i, doc_id in enumerate(validation["id"]) if doc_id not in listed]
    return datasets.DatasetDict(
        {
            "train": data["train"],
            "validation": validation.select(keep),
            "test": pooled.select([position[doc_id] for doc_id in ids]),
        }
    )
