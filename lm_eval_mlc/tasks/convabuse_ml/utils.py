"""ConvAbuse loader for the convabuse_ml YAML (lm-eval passes `--metadata` keys through)."""

from typing import Any

import datasets

from lm_eval_mlc.data import with_eval_split, with_label_names
from lm_eval_mlc.data.convabuse import label_names, load_convabuse


def load_dataset(eval_split: str | None = None, **kwargs: Any) -> datasets.DatasetDict:
    """ConvAbuse, each doc carrying the abuse types its prompt lists."""
    data = with_label_names(load_convabuse(**kwargs), label_names())
    return with_eval_split(data, eval_split)
