"""GoEmotions (Demszky et al., ACL 2020) as a multi-label task.

Each doc carries the gold label set after pooling the 27 emotions into the chosen label scheme
and, where per-rater data exists, the fraction of raters who chose each pooled label (the
distribution that the alignment metrics compare with a model's label probabilities).

Data comes from a local copy of the original release (`_release`) or from the Hugging Face Hub
(`hub`). Both are read into the same intermediate rows (`_rows`), which then go through the
same validation, pooling and doc building (`_docs`); only the reading differs. The label sets
are in `labels`.
"""

import logging
import os
from typing import Any

import datasets

from lm_eval_mlc.data._errors import DataValidationError
from lm_eval_mlc.data._local import id_list_path, read_id_list, resolve_data_dir
from lm_eval_mlc.data.goemotions._docs import build_docs, pool_raters
from lm_eval_mlc.data.goemotions._release import REQUIRED_FILES, read_release
from lm_eval_mlc.data.goemotions._rows import (
    apply_subset,
    check_disjoint,
    check_raters,
    check_split,
)
from lm_eval_mlc.data.goemotions.hub import read_hub
from lm_eval_mlc.data.goemotions.labels import Scheme, label_names, membership

logger = logging.getLogger(__name__)


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
    members = membership(scheme)
    ge_dir = resolve_data_dir(
        data_dir, folder="goemotions", required=REQUIRED_FILES, name="GoEmotions"
    )
    list_path = None if id_subset is None else id_list_path(id_subset, ge_dir)
    if ge_dir is None:
        splits, raters, problems = read_hub(annotators)
    else:
        logger.info("Loading GoEmotions from %s", ge_dir)
        splits, raters, problems = read_release(ge_dir, scheme, annotators)

    for split in splits.values():
        problems += check_split(split)
    problems += check_disjoint(splits.values())
    for table in raters:
        problems += check_raters(table)
    known_ids = {doc_id for split in splits.values() for doc_id in split.ids}
    subset: list[str] = []
    if list_path is not None:
        subset, list_problems = read_id_list(list_path, known_ids)
        problems += list_problems
    if problems:
        raise DataValidationError(problems)

    names = label_names(scheme)
    pooled = pool_raters(raters, members, len(names), known_ids) if raters else {}
    if list_path is not None:
        splits = apply_subset(splits, subset)
    return datasets.DatasetDict(
        {name: build_docs(split, members, names, pooled) for name, split in splits.items()}
    )
