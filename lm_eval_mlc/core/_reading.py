"""Reading an answer into items, and the label-set index that names them.

Items come from a bracketed list (JSON if it decodes, else loosely) or from delimited pieces;
each carries where it lies in the text read, so the matcher can locate its label.
"""

import difflib
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from lm_eval_mlc.core._text import (
    _BRACKET_SCAN_RE,
    _ESCAPED_LIST_RE,
    _ESCAPED_QUOTE_RE,
    _FUZZY_BUDGET,
    _JSON,
    _JSON_SCAN_RE,
    _LOOSE_ITEM_RE,
    _MAX_DEPTH,
    _MAX_SHORT,
    _PIECE_RE,
    _SUB_SPLIT_RE,
    NONE_MARKERS,
    _digits,
    _first_paragraph,
    _same,
    normalise_label,
)

# (raw text, is a string that may match a label, start, end, offset of the opening quote or -1).
# start:end is where raw lies in the text read (a JSON string's raw content when decoded);
# end - start == len(raw) exactly when raw is that text verbatim (JSON escapes only shrink).
_Item = tuple[str, bool, int, int, int]


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
        """Label keys `key` may be a near miss of (see the reading rules)."""
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


def _json_items(
    text: str, start: int, index: _LabelIndex, *, retried: bool = False
) -> tuple[Iterator[_Item], str, Callable[[int], int]]:
    """Items of the bracketed list starting at `text[start]`, JSON if possible, else loosely;
    the text their offsets refer to, and the map from those offsets to offsets of `text`."""
    try:
        value, end = _JSON.raw_decode(text, start)  # = json.loads of the balanced span, if valid
    except (ValueError, RecursionError):
        if not retried and _ESCAPED_LIST_RE.match(text, start):
            segment = text[start:]
            # Where each \" of `segment` lies once read as ": offsets after it move by one more.
            moved = [m.start() - k for k, m in enumerate(_ESCAPED_QUOTE_RE.finditer(segment))]
            unescaped = segment.replace('\\"', '"')
            items, _, _ = _json_items(unescaped, 0, index, retried=True)
            return items, unescaped, lambda offset: start + offset + bisect_left(moved, offset)
        end = _balanced_end(text, start)
        if end is None:
            return _loose_items(_first_paragraph(text[start:]), start, index), text, _same
        return _loose_items(text[start:end], start, index), text, _same
    return _json_leaves(value, text, start, end), text, _same


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


def _loose_items(text: str, offset: int, index: _LabelIndex) -> Iterator[_Item]:
    """Quoted strings, and the text between them split on the delimiters (not on "/" or "and",
    which in a list are more often prose), in order (`text` starts at `offset` of the text
    read)."""
    for token in _LOOSE_ITEM_RE.finditer(text):
        raw, at = token.group(), offset + token.start()
        if raw[0] in "\"'":  # only a quoted string starts with a quote (see _LOOSE_ITEM_RE)
            yield raw, True, at, at + len(raw), at
        else:
            yield from _pieces(raw, at, index, sub_split=False)


def _json_leaves(value: Any, text: str, start: int, end: int) -> Iterator[_Item]:
    """Leaves of a decoded JSON value, depth first, without recursion (nesting may be deep);
    string leaves carry the place of their raw content in `text[start:end]`, the span decoded."""
    # The list's own strings in order: those outside objects (whose keys and values are leaves
    # as a whole), as the decoder saw them.
    places = (
        (m.start() + 1, m.end() - 1)
        for m in _strings_outside_objects(_JSON_SCAN_RE.finditer(text, start, end))
    )
    stack = [iter((value,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if isinstance(item, str):
                content_start, content_end = next(places)
                yield item, True, content_start, content_end, content_start - 1
            else:
                yield _describe(item), False, -1, -1, -1
        else:
            stack.pop()


def _strings_outside_objects(tokens: Iterator[re.Match[str]]) -> Iterator[re.Match[str]]:
    depth = 0
    for token in tokens:
        s = token.group()
        if s == "{":
            depth += 1
        elif s == "}":
            depth -= 1
        elif depth == 0:
            yield token


def _describe(value: Any) -> str:
    """`str(value)` for a non-string JSON item."""
    try:
        return str(value)
    except RecursionError:  # deeply nested object
        return f"<{type(value).__name__}>"


def _pieces(
    text: str, offset: int, index: _LabelIndex, *, sub_split: bool = True
) -> Iterator[_Item]:
    """Pieces between delimiters; with `sub_split`, split on "/" and "and" unless the piece is a
    label or none-marker as a whole (`text` starts at `offset` of the text read)."""
    for found in _PIECE_RE.finditer(text):
        piece, at = found.group(), offset + found.start()
        key = normalise_label(piece) if sub_split and _SUB_SPLIT_RE.search(piece) else None
        if key is None or key in index.exact or key in NONE_MARKERS:
            yield piece, True, at, at + len(piece), -1
            continue
        cut = 0
        for split in _SUB_SPLIT_RE.finditer(piece):
            yield piece[cut : split.start()], True, at + cut, at + split.start(), -1
            cut = split.end()
        yield piece[cut:], True, at + cut, at + len(piece), -1
