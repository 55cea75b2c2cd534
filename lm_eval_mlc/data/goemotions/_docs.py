"""From validated rows to docs: pooling the raters' choices and building each split's docs."""

import logging
from collections.abc import Sequence

import datasets
import numpy as np

from lm_eval_mlc.data._table import docs_from_columns
from lm_eval_mlc.data.goemotions._rows import RaterRows, SplitRows
from lm_eval_mlc.data.goemotions.labels import EMOTIONS

logger = logging.getLogger(__name__)


def pool_raters(
    tables: Sequence[RaterRows],
    membership: Sequence[tuple[int, ...]],
    n_labels: int,
    known_ids: set[str],
) -> dict[str, tuple[list[float], int]]:
    """Per text id: fraction of its raters whose choices turn each label on, and rater count.

    Raters who flagged the example as very unclear chose no emotions (the release records them
    with all-zero labels), so they are left out rather than counted as choosing neutral. A
    rater who chose only neutral, or nothing, counts with an empty label set.
    """
    ids = np.array([doc_id for table in tables for doc_id in table.ids], dtype=object)
    choices = np.concatenate([table.choices for table in tables])
    very_unclear = np.concatenate([table.very_unclear for table in tables])
    known = np.fromiter((doc_id in known_ids for doc_id in ids), dtype=bool, count=len(ids))
    if not known.all():
        unknown = ids[~known]
        logger.info(
            "Ignored %d rater rows for %d ids that are in no split",
            len(unknown),
            len(set(unknown)),
        )

    pool = np.zeros((len(EMOTIONS), n_labels), dtype=np.int32)
    for emotion, labels in enumerate(membership):
        pool[emotion, list(labels)] = 1

    keep = known & ~very_unclear
    pooled = (choices[keep].astype(np.int32) @ pool) > 0
    uniq, inverse = np.unique(ids[keep].astype(str), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(uniq))
    totals = np.stack(
        [np.bincount(inverse, weights=pooled[:, k], minlength=len(uniq)) for k in range(n_labels)],
        axis=1,
    )
    fractions = totals / np.maximum(counts, 1)[:, None]
    return {
        doc_id: (fraction.tolist(), int(count))
        for doc_id, fraction, count in zip(uniq.tolist(), fractions, counts, strict=True)
    }


def build_docs(
    split: SplitRows,
    membership: Sequence[tuple[int, ...]],
    names: Sequence[str],
    pooled: dict[str, tuple[list[float], int]],
) -> datasets.Dataset:
    """The split's docs: pooled gold labels and, where `pooled` has the id, rater fractions."""
    labels: list[list[str]] = []
    probs: list[list[float]] = []
    n_raters: list[int] = []
    for doc_id, label_ids in zip(split.ids, split.label_ids, strict=True):
        on = {label for emotion in label_ids or () for label in membership[emotion]}
        labels.append([names[label] for label in sorted(on)])
        fractions, count = pooled.get(doc_id, ([], 0))
        probs.append(fractions)
        n_raters.append(count)
    return docs_from_columns(
        {
            "id": split.ids,
            "text": split.texts,
            "labels": labels,
            "annotator_probs": probs,
            "n_raters": n_raters,
        }
    )
