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


def with_eval_split(data: datasets.DatasetDict, eval_split: str | None) -> datasets.DatasetDict:
    """Evaluate on another split (`--metadata '{"eval_split": "validation"}'`).

    lm-eval evaluates a task's `test_split`; a validation run (to fit thresholds or decision
    rules that are then applied to the test run) swaps that split's docs in.
    """
    if not eval_split or eval_split == "test":
        return data
    if eval_split not in data:
        raise ValueError(
            f"Expected eval_split to be one of {sorted(data)}, but got {eval_split!r}."
        )
    return datasets.DatasetDict({**data, "test": data[eval_split]})
