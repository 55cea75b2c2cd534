"""Reading GoEmotions from the Hugging Face Hub into the intermediate rows.

Config `simplified` gives the splits; config `raw` (one row per rater and text) gives the
per-rater data, which is optional: without it the docs carry no rater distribution.
"""

import logging

import datasets
import numpy as np

from lm_eval_mlc.data._errors import DataProblem
from lm_eval_mlc.data._local import DATA_DIR_ENV
from lm_eval_mlc.data._records import missing_columns
from lm_eval_mlc.data.goemotions._rows import RATER_COLUMNS, RaterRows, SplitRows
from lm_eval_mlc.data.goemotions.labels import EMOTIONS

logger = logging.getLogger(__name__)

HUB_PATH = "google-research-datasets/go_emotions"

_SPLITS = ("train", "validation", "test")
_SPLIT_COLUMNS = ("text", "labels", "id")


def read_hub(
    annotators: bool,
) -> tuple[dict[str, SplitRows], list[RaterRows], list[DataProblem]]:
    """The splits, the per-rater table (when `annotators` and config `raw` loads), problems."""
    logger.info("Loading GoEmotions from the Hugging Face Hub (%s)", HUB_PATH)
    try:
        simplified = datasets.load_dataset(HUB_PATH, "simplified")
    except Exception as err:
        err.add_note(f"For local GoEmotions files pass data_dir=... or set ${DATA_DIR_ENV}.")
        raise
    splits: dict[str, SplitRows] = {}
    problems: list[DataProblem] = []
    for name in _SPLITS:
        splits[name], split_problems = _hub_split(
            simplified[name], f"{HUB_PATH}[simplified/{name}]"
        )
        problems += split_problems
    raters: list[RaterRows] = []
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


def _hub_split(ds: datasets.Dataset, source: str) -> tuple[SplitRows, list[DataProblem]]:
    """A `simplified` split; its label names must be the release's emotions in order."""
    problems = missing_columns(ds.column_names, _SPLIT_COLUMNS, source, 0)
    if problems:
        return SplitRows(source, [], [], [], []), problems
    names = getattr(getattr(ds.features["labels"], "feature", None), "names", None)
    if names is not None and tuple(names) != EMOTIONS:
        message = f"label names {names} differ from the GoEmotions emotions {list(EMOTIONS)}"
        problems.append(DataProblem(source, 0, "labels", message))
    batch = ds.select_columns(list(_SPLIT_COLUMNS))[:]
    return SplitRows(
        source=source,
        rows=list(range(1, len(ds) + 1)),
        texts=batch["text"],
        label_ids=[list(ids) for ids in batch["labels"]],
        ids=batch["id"],
    ), problems


def _hub_raters(ds: datasets.Dataset, source: str) -> tuple[RaterRows | None, list[DataProblem]]:
    """The `raw` config: one row per rater and text, emotions as 0/1 int (or bool) columns."""
    problems = missing_columns(ds.column_names, RATER_COLUMNS, source, 0)
    if problems:
        return None, problems
    batch = ds.select_columns(list(RATER_COLUMNS))[:]
    values = np.array([batch[name] for name in EMOTIONS], dtype=np.int64).T
    for i, j in np.argwhere((values != 0) & (values != 1)).tolist():
        message = f"expected 0 or 1, got {values[i, j]}"
        problems.append(DataProblem(source, i + 1, EMOTIONS[j], message))
    table = RaterRows(
        source=source,
        rows=list(range(1, len(ds) + 1)),
        ids=batch["id"],
        rater_ids=["" if r is None else str(r) for r in batch["rater_id"]],
        very_unclear=np.array(batch["example_very_unclear"], dtype=bool),
        choices=values == 1,
    )
    return table, problems
