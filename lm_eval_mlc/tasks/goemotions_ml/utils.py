"""GoEmotions loader for the goemotions_ml YAMLs (lm-eval passes `--metadata` keys through)."""

from typing import Any

import datasets

from lm_eval_mlc.data import with_eval_split, with_label_names
from lm_eval_mlc.data.goemotions import load_goemotions
from lm_eval_mlc.data.goemotions.labels import label_names


def load_dataset(
    scheme: str = "clusters", eval_split: str | None = None, **kwargs: Any
) -> datasets.DatasetDict:
    """GoEmotions for one label scheme, each doc carrying the label names its prompt lists."""
    data = with_label_names(load_goemotions(scheme=scheme, **kwargs), label_names(scheme))
    return with_eval_split(data, eval_split)
