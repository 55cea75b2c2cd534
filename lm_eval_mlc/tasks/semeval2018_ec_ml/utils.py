"""SemEval-2018 E-c loader for the semeval2018_ec_ml YAMLs (lm-eval passes `--metadata` keys)."""

from typing import Any

import datasets

from lm_eval_mlc.data import with_eval_split, with_label_names
from lm_eval_mlc.data.semeval import label_names, load_semeval2018_ec


def load_dataset(eval_split: str | None = None, **kwargs: Any) -> datasets.DatasetDict:
    """SemEval-2018 E-c, each doc carrying the label names its prompt lists."""
    data = with_label_names(load_semeval2018_ec(**kwargs), label_names())
    return with_eval_split(data, eval_split)
