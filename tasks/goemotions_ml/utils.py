"""Hooks the goemotions_ml YAMLs point at: the loader plus the shared multi-label adapters."""

from typing import Any

import datasets

from lm_eval_mlc.data.goemotions import label_names, load_goemotions
from lm_eval_mlc.fewshot import MixedLabelSampler
from lm_eval_mlc.harness import (
    align_bce,
    align_brier,
    align_js,
    align_mae,
    brier,
    doc_to_target,
    ece,
    ece_1bin,
    exact_match,
    hamming_loss,
    invalid_label_rate,
    jaccard,
    macro_f1,
    micro_f1,
    process_results,
    samples_f1,
)


def load_dataset(scheme: str = "clusters", **kwargs: Any) -> datasets.DatasetDict:
    """GoEmotions for one label scheme, each doc carrying the label names its prompt lists."""
    names = label_names(scheme)
    return datasets.DatasetDict(
        {
            split: ds.add_column("label_names", [names] * len(ds))
            for split, ds in load_goemotions(scheme=scheme, **kwargs).items()
        }
    )


__all__ = [
    "MixedLabelSampler",
    "align_bce",
    "align_brier",
    "align_js",
    "align_mae",
    "brier",
    "doc_to_target",
    "ece",
    "ece_1bin",
    "exact_match",
    "hamming_loss",
    "invalid_label_rate",
    "jaccard",
    "load_dataset",
    "macro_f1",
    "micro_f1",
    "process_results",
    "samples_f1",
]
