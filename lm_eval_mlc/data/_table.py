"""The column schema every multi-label doc shares, and building a split straight from columns."""

from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import pyarrow as pa

#: Columns every loader produces; loaders may add their own after these.
DOC_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "labels": datasets.Sequence(datasets.Value("string")),
        "annotator_probs": datasets.Sequence(datasets.Value("float64")),
        "n_raters": datasets.Value("int32"),
    }
)


def docs_from_columns(
    columns: Mapping[str, Sequence[Any]], extra: Mapping[str, Any] | None = None
) -> datasets.Dataset:
    """A split from parallel columns: `DOC_FEATURES` plus `extra` (name -> feature) ones.

    Goes straight to Arrow: `Dataset.from_dict(features=...)` encodes row by row.
    """
    features = datasets.Features({**DOC_FEATURES, **(extra or {})})
    table = pa.Table.from_pydict(
        {name: list(columns[name]) for name in features}, schema=features.arrow_schema
    )
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features))


def indicator_labels(rows: Sequence[Sequence[int]], names: Sequence[str]) -> list[list[str]]:
    """Label names of each row's 1 entries, in label-set order."""
    return [[name for name, on in zip(names, row, strict=True) if on] for row in rows]
