"""Llama Guard 3 category loader for the content_safety_lg3_ml YAML (`--metadata` keys pass)."""

from typing import Any

import datasets

from lm_eval_mlc.data import with_eval_split, with_label_names
from lm_eval_mlc.data.content_safety import label_names, load_content_safety


def load_dataset(eval_split: str | None = None, **kwargs: Any) -> datasets.DatasetDict:
    """The Llama Guard 3 category data, each doc carrying the categories its prompt lists."""
    data = with_label_names(load_content_safety(**kwargs), label_names())
    return with_eval_split(data, eval_split)
