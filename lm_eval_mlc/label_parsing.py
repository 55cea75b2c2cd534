"""Read a generative model's answer as a set of labels.

The prompt asks for a JSON list of label names (``["joy", "anger"]``, or ``[]`` when none
apply), but models answer in many ways. :func:`parse_labels` reads any text leniently, never
raises on it, and reports the items it could not match, from which :func:`invalid_rate` gives
the corpus-level ``invalid_label_rate``.

Reading (``ParsedLabels.fmt``):

* ``"empty"``: the text is blank (or None, from a backend that returned nothing).
* ``"json"``: the text contains ``[``. The shortest balanced bracket span from the first ``[``
  is decoded as JSON; nested lists are flattened and non-string items (numbers, ``null``,
  objects) are invalid items, shown as their ``str()``. A span that is not JSON but opens
  like JSON escaped twice (``[\\"joy\\", ...``) is retried once with ``\\"`` read as ``"``;
  failing that (``['joy']``, ``[joy, anger]``), its quoted strings and the comma-separated pieces
  between them are the items; the same goes when it never closes (truncated output, or nested
  more than 16 deep), reading up to the first blank line. JSON strings are never split further.
* ``"delimited"``: anything else. The text before the first blank line is split on ``,``,
  ``;``, ``|`` and line breaks (also U+0085, U+2028, U+2029); a piece that is not itself a
  label or none-marker is split further on ``/`` and the word ``and`` (so a label ``Sci/Tech``
  or the marker ``n/a`` stays whole).

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
"""

import difflib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

#: Normalised answers that mean "no label applies"; they are neither items nor invalid.
NONE_MARKERS: frozenset[str] = frozenset(
    {
        "none",
        "neutral",
        "no emotion",
        "no emotions",
        "n/a",
        "nothing",
        "none of the above",
        "no label",
        "no labels",
    }
)

#: The invalid item standing for all pieces past the inspection cap.
TRUNCATED_ITEM = "<further items not inspected>"

_MAX_SHORT = 3  # items this short are never fuzzy-matched
_FUZZY_BUDGET = 5_000  # difflib label comparisons per answer
_MAX_DEPTH = 16  # a bracket span nested deeper than this is read as unclosed

_LEAD_JUNK = " \"'`“”‘’«»[](){}<>*•·+-–—"
_TRAIL_JUNK = " \"'`“”‘’«»[](){}<>*.,:;!?"
_ALL_JUNK = _LEAD_JUNK + _TRAIL_JUNK + "\t\n\r\f\v"
_SEPARATORS = str.maketrans("_-", "  ")
_ENUMERATOR_RE = re.compile(r"\d{1,3}[.)] ")
_DIGIT_RE = re.compile(r"\d")
# Invisible characters: C0/C1 controls that str.split() does not treat as space, zero-width
# characters and the byte-order mark. They never belong to a label.
_INVISIBLE_RE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b-\u200d\u2060\ufeff]")

# Quoted strings. Both always match once opened (an unclosed one runs to the end of the text),
# so scanning stays linear. A single quote opens a string only after a non-word character and
# closes one only before a non-word character, so apostrophes ("it's") are not quotes.
_DQ = r'"(?:[^"\\]|\\[\s\S]?)*+(?:"|\Z)'
_SQ = r"(?<!\w)'(?:[^'\\]|\\[\s\S]?|'(?=\w))*+(?:'|\Z)"
_BRACKET_SCAN_RE = re.compile(rf"{_DQ}|{_SQ}|[\[\]]")
_LOOSE_ITEM_RE = re.compile(rf"{_DQ}|{_SQ}|(?:[^,\"']++|(?<=\w)')+")
_PIECE_RE = re.compile(r"[^,;|\s][^,;|\r\n\x85\u2028\u2029]*")
_SUB_SPLIT_RE = re.compile(r"/|\band\b", re.IGNORECASE)
_ESCAPED_LIST_RE = re.compile(r'\[\s*\\"')  # [\"joy\", ...]: JSON escaped twice
_BLANK_LINE_RE = re.compile(r"\n[^\S\n]*\n")

_JSON = json.JSONDecoder()
_Item = tuple[str, bool]  # (raw text, is a string that may match a label)


@dataclass(frozen=True, slots=True)
class ParsedLabels:
    """One parsed answer.

    Attributes:
        labels: matched canonical label names, in label-set order, each at most once.
        invalid: items that matched no label, in output order (edge junk stripped, case kept).
        n_items: distinct non-empty items other than none-markers (see module docstring).
        fmt: how the text was read: ``"json"``, ``"delimited"`` or ``"empty"`` (blank text).
    """

    labels: tuple[str, ...]
    invalid: tuple[str, ...]
    n_items: int
    fmt: Literal["json", "delimited", "empty"]


def normalise_label(text: str) -> str:
    """The matching key of `text`: casefolded; invisible control and zero-width characters
    dropped; leading quotes/brackets/bullets/enumerators ("1. ") and trailing
    quotes/brackets/punctuation removed; ``_``, ``-`` and runs of whitespace inside read as one
    space (so ``no_emotion`` == ``No emotion``)."""
    return " ".join(_clean(text).casefold().translate(_SEPARATORS).split())


def parse_labels(
    text: str | None, label_names: Sequence[str], *, cutoff: float = 0.8
) -> ParsedLabels:
    """Parse a generated answer into labels of `label_names`; never raises on any `text`.

    `cutoff` is the :func:`difflib.get_close_matches` similarity needed for a near miss to
    match. Raises ValueError if `cutoff` is outside [0, 1] or two label names share a
    normalised form (or one has none).
    """
    if not 0.0 <= cutoff <= 1.0:
        raise ValueError(f"cutoff must be in [0, 1], got {cutoff!r}")
    index = _label_index(tuple(label_names))
    text = (text or "").strip()
    if not text:
        return ParsedLabels((), (), 0, "empty")
    start = text.find("[")
    if start >= 0:
        return _collect(_json_items(text, start), index, cutoff, "json")
    return _collect(_delimited_items(_first_paragraph(text), index), index, cutoff, "delimited")


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


class _LabelIndex:
    """Lookup tables for one label set (built once per label set, see `_label_index`)."""

    def __init__(self, label_names: tuple[str, ...]) -> None:
        self.exact: dict[str, str] = {}
        for name in label_names:
            key = normalise_label(name)
            if not key or key in self.exact:
                raise ValueError(
                    f"label {name!r} normalises to {key!r}, which is empty or already taken"
                )
            self.exact[key] = name
        self.rank = {name: i for i, name in enumerate(label_names)}
        self.cap = 4 * len(label_names) + 16
        self.none_markers = NONE_MARKERS - self.exact.keys()
        by_digits: dict[str, list[str]] = {}
        for key in self.exact:
            by_digits.setdefault(_digits(key), []).append(key)
        self.by_digits = {digits: tuple(keys) for digits, keys in by_digits.items()}
        lengths = [len(key) for key in self.exact] or [0]
        self.min_len, self.max_len = min(lengths), max(lengths)

    def fuzzy_candidates(self, key: str, cutoff: float) -> tuple[str, ...]:
        """Label keys `key` may be a near miss of (see module docstring)."""
        if len(key) <= _MAX_SHORT:
            return ()
        # The best ratio any label length allows (difflib's real_quick_ratio bound): skipping
        # hopeless items here keeps long garbage cheap.
        nearest = min(max(len(key), self.min_len), self.max_len)
        if 2.0 * min(len(key), nearest) / (len(key) + nearest) < cutoff:
            return ()
        return self.by_digits.get(_digits(key), ())


class _Matcher:
    """Matches the normalised items of one answer, spending at most `_FUZZY_BUDGET` fuzzy
    comparisons so that many distinct garbage items against a large label set stay cheap."""

    def __init__(self, index: _LabelIndex, cutoff: float) -> None:
        self.index, self.cutoff, self.budget = index, cutoff, _FUZZY_BUDGET

    def __call__(self, key: str) -> str | None:
        label = self.index.exact.get(key)
        if label is not None:
            return label
        candidates = self.index.fuzzy_candidates(key, self.cutoff)
        if not candidates or len(candidates) > self.budget:
            return None
        self.budget -= len(candidates)
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=self.cutoff)
        return self.index.exact[close[0]] if close else None


@lru_cache(maxsize=64)
def _label_index(label_names: tuple[str, ...]) -> _LabelIndex:
    return _LabelIndex(label_names)


def _clean(text: str) -> str:
    """Drop invisible characters, collapse whitespace and strip edge junk, keeping case (the
    form reported as invalid)."""
    s = " ".join(_INVISIBLE_RE.sub("", text).split()).lstrip(_LEAD_JUNK)
    if enumerator := _ENUMERATOR_RE.match(s):
        s = s[enumerator.end() :].lstrip(_LEAD_JUNK)
    return s.rstrip(_TRAIL_JUNK)


def _digits(key: str) -> str:
    """The digits of `key`, in order: a near miss must keep them ("S1" is never "S10")."""
    return "".join(_DIGIT_RE.findall(key))


def _first_paragraph(text: str) -> str:
    """`text` up to its first blank line (what follows is usually an explanation)."""
    blank = _BLANK_LINE_RE.search(text)
    return text[: blank.start()] if blank else text


def _json_items(text: str, start: int, *, retried: bool = False) -> Iterator[_Item]:
    """Items of the bracketed list starting at `text[start]`, JSON if possible, else loosely."""
    try:
        value, _ = _JSON.raw_decode(text, start)  # = json.loads of the balanced span, if valid
    except (ValueError, RecursionError):
        if not retried and _ESCAPED_LIST_RE.match(text, start):
            return _json_items(text[start:].replace('\\"', '"'), 0, retried=True)
        end = _balanced_end(text, start)
        if end is None:
            return _loose_items(_first_paragraph(text[start:]))
        return _loose_items(text[start:end])
    return _flatten(value)


def _balanced_end(text: str, start: int) -> int | None:
    """End of the bracket span opened at `text[start]`, ignoring brackets inside quotes."""
    depth = 0
    for token in _BRACKET_SCAN_RE.finditer(text, start):
        if token.group() == "[":
            depth += 1
            if depth > _MAX_DEPTH:
                return None
        elif token.group() == "]":
            depth -= 1
            if depth == 0:
                return token.end()
    return None


def _loose_items(text: str) -> Iterator[_Item]:
    """Quoted strings and the comma-separated pieces between them, in order."""
    for token in _LOOSE_ITEM_RE.finditer(text):
        yield token.group(), True


def _flatten(value: Any) -> Iterator[_Item]:
    """Leaves of a decoded JSON value, depth first, without recursion (nesting may be deep)."""
    stack = [iter((value,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            yield (item, True) if isinstance(item, str) else (_describe(item), False)
        else:
            stack.pop()


def _describe(value: Any) -> str:
    """`str(value)` for a non-string JSON item."""
    try:
        return str(value)
    except RecursionError:  # deeply nested object
        return f"<{type(value).__name__}>"


def _delimited_items(text: str, index: _LabelIndex) -> Iterator[_Item]:
    """Pieces between delimiters; split on "/" and "and" unless the piece is a label as a whole."""
    for piece in _PIECE_RE.findall(text):
        key = normalise_label(piece) if _SUB_SPLIT_RE.search(piece) else None
        if key is None or key in index.exact or key in NONE_MARKERS:
            yield piece, True
        else:
            for part in _SUB_SPLIT_RE.split(piece):
                yield part, True


def _collect(
    items: Iterator[_Item], index: _LabelIndex, cutoff: float, fmt: Literal["json", "delimited"]
) -> ParsedLabels:
    """Match items against the label set, applying the counting policy of the module."""
    match = _Matcher(index, cutoff)
    found: set[str] = set()
    invalid: list[str] = []
    seen: set[_Item] = set()
    inspected = 0
    for raw, is_str in items:
        if is_str and not raw.strip(_ALL_JUNK):  # cheap pre-check: pure junk is common
            continue
        key = normalise_label(raw) if is_str else raw
        if not key:
            continue
        if inspected == index.cap:
            invalid.append(TRUNCATED_ITEM)
            seen.add((TRUNCATED_ITEM, False))
            break
        inspected += 1
        if (is_str and key in index.none_markers) or (key, is_str) in seen:
            continue
        seen.add((key, is_str))
        label = match(key) if is_str else None
        if label is None:
            invalid.append(_clean(raw) if is_str else raw)
        else:
            found.add(label)
    labels = tuple(sorted(found, key=index.rank.__getitem__))
    return ParsedLabels(labels, tuple(invalid), len(seen), fmt)
