"""Where labels start in a generated answer, so their step distributions can be measured.

Quoted answers (`["joy", "anger"]`) are read item by item between quotes; unquoted ones
(`joy, anger`) between delimiters. An item counts when it equals a label up to case and
surrounding space; each label counts once (its first occurrence). Near misses and off-label
items are not steps (the parser still counts them as invalid).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_QUOTED = re.compile(r"([\"'])([^\"'\n]*)\1")
_UNQUOTED = re.compile(r"[^,\[\]\n;]+")
UNQUOTED_CLOSERS = ",]\n;"


@dataclass(frozen=True)
class LabelSpan:
    start: int  # character offset of the label text
    label: int  # index into the label set
    quote: str  # the quote character around it, "" when unquoted


def label_spans(text: str, label_names: Sequence[str]) -> list[LabelSpan]:
    """Label occurrences in answer order (first occurrence of each label)."""
    index = {name.casefold(): i for i, name in enumerate(label_names)}
    quoted = '"' in text or "'" in text
    matches = (
        ((m.start(2), m.group(2), m.group(1)) for m in _QUOTED.finditer(text))
        if quoted
        else ((m.start(), m.group(), "") for m in _UNQUOTED.finditer(text))
    )
    spans: list[LabelSpan] = []
    seen: set[int] = set()
    for start, item, quote in matches:
        stripped = item.strip()
        label = index.get(stripped.casefold())
        if label is not None and label not in seen:
            seen.add(label)
            spans.append(LabelSpan(start + len(item) - len(item.lstrip()), label, quote))
    return spans
