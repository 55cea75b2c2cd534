"""Read a generative model's answer as a set of labels.

The prompt asks for a JSON list of label names (``["joy", "anger"]``, or ``[]`` when none
apply), but models answer in many ways. :func:`parse_labels` reads any text leniently, never
raises on it, and reports the items it could not match, from which :func:`invalid_rate` gives
the corpus-level ``invalid_label_rate``. The machinery lives in :mod:`lm_eval_mlc.core.matching`,
which ``hf-mlc``'s step finder (``label_spans``) shares, so a label read here is also a label
step there; this module is the reference for the reading rules.

Reading (``ParsedLabels.fmt``):

* ``"empty"``: the text is blank (or None, from a backend that returned nothing).
* ``"json"``: the text contains ``[``. The shortest balanced bracket span from the first ``[``
  is decoded as JSON; nested lists are flattened and non-string items (numbers, ``null``,
  objects) are invalid items, shown as their ``str()``. A span that is not JSON but opens
  like JSON escaped twice (``[\\"joy\\", ...``) is retried once with ``\\"`` read as ``"``;
  failing that (``['joy']``, ``[joy, anger]``), its quoted strings are items and the text
  between them is split on the delimiters of delimited text (below; not on ``/`` or ``and``,
  which in a list are more often prose); the same goes when it never closes
  (truncated output, or nested more than 16 deep), reading up to the first blank line. A ``"``
  always opens a string; a ``'`` opens one only after a non-word character and closes it only
  before one, so apostrophes (``it's``) are not quotes. Quoted strings are never split.
* ``"delimited"``: anything else. The text before the first blank line is split on ``,``,
  ``;``, ``|``, ``]`` and line breaks (also U+0085, U+2028, U+2029); a piece that is not itself
  a label or none-marker is split further on ``/`` and the word ``and`` (so a label ``Sci/Tech``
  or the marker ``n/a`` stays whole). Quotes here are edge junk, not structure.

Matching, on :func:`normalise_label` keys: an exact match first; then a none-marker
(:data:`NONE_MARKERS`, unless a label has that name); then the nearest label by
:func:`difflib.get_close_matches` at ``cutoff``. Fuzzy matching skips items of at most 3
characters, where one edit changes the meaning ("S1" vs "S2" are only 0.5 apart yet distinct),
and only considers labels with the same digits as the item, so numbered labels ("S1", "S10",
"label_12") are never confused with each other. It stops once an answer has spent 5,000 label
comparisons (about 10 ms), which only answers with many distinct non-labels against a large
label set reach; their later near misses count as invalid.

Counting: ``n_items`` counts distinct normalised items, leaving out empty pieces and
none-markers, so a repeated label or invalid item counts once. Only the first
``4 * len(label_names) + 16`` non-empty pieces are inspected, bounding the work on runaway
generations; if more follow, they count together as one invalid item, :data:`TRUNCATED_ITEM`,
so that a single runaway answer cannot dominate the corpus-level rate.

Where each label was written: ``ParsedLabels.spans`` (see :mod:`lm_eval_mlc.core.matching`).
"""

from collections.abc import Iterable, Sequence

import numpy as np

from lm_eval_mlc.core._text import NONE_MARKERS
from lm_eval_mlc.core.matching import (
    TRUNCATED_ITEM,
    LabelSpan,
    ParsedLabels,
    normalise_label,
    parse_labels,
)

__all__ = [
    "NONE_MARKERS",
    "TRUNCATED_ITEM",
    "LabelSpan",
    "ParsedLabels",
    "invalid_rate",
    "normalise_label",
    "parse_labels",
    "to_indicator",
]


def to_indicator(labels: Iterable[str], label_names: Sequence[str]) -> np.ndarray:
    """0/1 int8 vector over `label_names` marking `labels`; ValueError on an unknown name."""
    position = {name: i for i, name in enumerate(label_names)}
    out = np.zeros(len(label_names), dtype=np.int8)
    for label in labels:
        if label not in position:
            raise ValueError(f"unknown label {label!r}: not in label_names")
        out[position[label]] = 1
    return out


def invalid_rate(parsed: Iterable[ParsedLabels]) -> float:
    """Share of items that matched no label over a corpus (0.0 when there are no items)."""
    n_invalid = n_items = 0
    for p in parsed:
        n_invalid += len(p.invalid)
        n_items += p.n_items
    return n_invalid / max(n_items, 1)
