"""What every multi-label doc carries besides the loader's own columns."""

from collections.abc import Sequence

import datasets


def with_label_names(data: datasets.DatasetDict, names: Sequence[str]) -> datasets.DatasetDict:
    """Add a `label_names` column (the task's label set, in order) to every split.

    The prompt lists the labels and `process_results` maps answers onto them, and lm-eval hands
    both only the doc, so the doc carries its label set.
    """
    return datasets.DatasetDict(
        {split: ds.add_column("label_names", [list(names)] * len(ds)) for split, ds in data.items()}
    )
