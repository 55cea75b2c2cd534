"""The one label matcher: an answer's text, its items, their labels and where they are.

Both readers of a generated answer go through :func:`parse_labels` here: the answer parser
(the ``generated`` strategy and ``invalid_label_rate``, through :mod:`lm_eval_mlc.core.parsing`)
and the step finder (:func:`label_spans`, which tells ``hf-mlc`` where each label starts so that
its probability can be measured). One pass finds the items, one normaliser keys them and one
matcher names them, so the two readers find the same labels by construction: a near miss
(``sadnes``), a split piece (``joy and anger``) or a variant (``Sex-Harassment``) that the
parser credits is also a step. The reading rules (JSON or delimited, splitting, near misses,
counting) are documented in :mod:`lm_eval_mlc.core.parsing`, the public parser module.

Spans (:class:`LabelSpan`), one per matched label, at the label's first occurrence:

* ``text[start:end]`` is the item as the model wrote it, without the edge characters the
  normaliser drops (quotes, brackets, bullets, enumerators such as ``1.``, trailing
  punctuation, whitespace, ``_``/``-`` and invisible characters): ``Anger``, ``sex harassment``,
  ``sadnes``.
* A JSON string that holds an escape (``"\\u00fcber"``, ``"joy\\n"``) decodes to text that is not
  in the answer: its span covers the raw characters that spell the label part of the decoded
  string, escapes included (``\\u00fcber``), and runs to the closing quote when an escape
  follows the label (``joy\\n``), so ``text[start:end]`` then differs from the label text and
  reads as it once decoded as a JSON string.
* ``quote`` is what encloses a quoted string item: ``"``, ``'``, or ``\\"`` in an answer whose JSON
  was escaped twice (``[\\"joy\\"]``, spanned in the original text). It is ``""`` for unquoted
  items, which includes every piece of a delimited answer: there quotes are edge junk, not
  structure.

Where an item ends: :func:`closes_item` says whether the text after a label's last character
ends the item as :func:`parse_labels` reads it (``hf-mlc`` uses it to find the tokens that end a
label); :data:`UNQUOTED_CLOSERS` lists the characters that can end an unquoted item.
"""

import difflib
import json
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

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
_INVISIBLE_CLASS = "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b-\u200d\u2060\ufeff"
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE_CLASS}]")
_INVISIBLE = "".join(c for c in map(chr, range(0x10000)) if _INVISIBLE_RE.match(c))
_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # U+3000 is the last
_LINE_BREAKS = "\n\r\x85\u2028\u2029"
_ITEM_ENDS = ",;|]" + _LINE_BREAKS  # end an unquoted piece

# What the normaliser drops after a label's last character, in order: first `_`/`-` (read as
# spaces), then trailing junk; whitespace and invisible characters in both.
_DROP_SEPARATORS = "_-" + _WHITESPACE + _INVISIBLE
_DROP_TRAILING = _TRAIL_JUNK + _WHITESPACE + _INVISIBLE
_DROP_LEADING = _LEAD_JUNK + _WHITESPACE + _INVISIBLE
_LEAD_EDGE = frozenset(_DROP_LEADING + _DROP_SEPARATORS)
_TRAIL_EDGE = frozenset(_DROP_TRAILING + _DROP_SEPARATORS)
# _ENUMERATOR_RE as it reads in raw text, where invisible characters may sit anywhere and the
# space is any whitespace run followed by something that survives cleaning.
_RAW_ENUMERATOR_RE = re.compile(
    rf"\d(?:[{_INVISIBLE_CLASS}]*\d){{0,2}}[{_INVISIBLE_CLASS}]*[.)]"
    rf"[{_INVISIBLE_CLASS}]*\s[\s{_INVISIBLE_CLASS}]*(?=[^\s{_INVISIBLE_CLASS}])"
)

#: Characters that can end an unquoted item: the separators (``,``, ``;``, ``|``, ``]``, line
#: breaks), ``/`` (splits a delimited piece that is not itself a label), ``"`` (opens the next
#: item in a bracketed list) and the trailing punctuation the normaliser strips (``.``, ``!``,
#: quotes, brackets, ...), which ends the item when only such junk follows up to a separator or
#: the end. Whether a given text does is :func:`closes_item`'s answer.
UNQUOTED_CLOSERS: str = "".join(dict.fromkeys(_ITEM_ENDS + '/"' + _TRAIL_JUNK.replace(" ", "")))

# Quoted strings. Both always match once opened (an unclosed one runs to the end of the text),
# so scanning stays linear. A single quote opens a string only after a non-word character and
# closes one only before a non-word character, so apostrophes ("it's") are not quotes.
_DQ = r'"(?:[^"\\]|\\[\s\S]?)*+(?:"|\Z)'
_SQ = r"(?<!\w)'(?:[^'\\]|\\[\s\S]?|'(?=\w))*+(?:'|\Z)"
_BRACKET_SCAN_RE = re.compile(rf"{_DQ}|{_SQ}|[\[\]]")
_JSON_SCAN_RE = re.compile(rf"{_DQ}|[{{}}]")
_LOOSE_ITEM_RE = re.compile(rf"{_DQ}|{_SQ}|(?:[^,\"']++|(?<=\w)')+")
_ENDS_CLASS = re.escape(_ITEM_ENDS)
_PIECE_RE = re.compile(rf"[^{_ENDS_CLASS}\s][^{_ENDS_CLASS}]*")
_SUB_SPLIT_RE = re.compile(r"/|\band\b", re.IGNORECASE)
_AND_RE = re.compile(r"and\b", re.IGNORECASE)
_ESCAPED_LIST_RE = re.compile(r'\[\s*\\"')  # [\"joy\", ...]: JSON escaped twice
_ESCAPED_QUOTE_RE = re.compile(r'\\"')
_JSON_ESCAPE_RE = re.compile(
    r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[\s\S])"
)
_BLANK_LINE_RE = re.compile(r"\n[^\S\n]*\n")
_WORD_RE = re.compile(r"\w")

_JSON = json.JSONDecoder()
_QUOTES = ("", '"', "'", '\\"')

# (raw text, is a string that may match a label, start, end, offset of the opening quote or -1).
# start:end is where raw lies in the text read (a JSON string's raw content when decoded);
# end - start == len(raw) exactly when raw is that text verbatim (JSON escapes only shrink).
_Item = tuple[str, bool, int, int, int]


@dataclass(frozen=True)
class LabelSpan:
    """Where a label's item lies in an answer (see the module docstring).

    Attributes:
        start: offset in the text where the item's label text, as written, begins (quotes,
            junk and leading space excluded).
        end: offset just past it (trailing junk and quote excluded).
        label: index into the label names.
        quote: what encloses the item (``"``, ``'`` or ``\\"``), ``""`` when unquoted.
    """

    start: int
    end: int
    label: int
    quote: str


@dataclass(frozen=True, slots=True)
class ParsedLabels:
    """One parsed answer.

    Attributes:
        labels: matched canonical label names, in label-set order, each at most once.
        invalid: items that matched no label, in output order (edge junk stripped, case kept).
        n_items: distinct non-empty items other than none-markers (see the reading rules).
        fmt: how the text was read: ``"json"``, ``"delimited"`` or ``"empty"`` (blank text).
        spans: one :class:`LabelSpan` per label of `labels`, at its first occurrence, sorted by
            ``start`` (offsets in the text as passed). Not part of equality: it is where the
            labels are, not what was parsed.
    """

    labels: tuple[str, ...]
    invalid: tuple[str, ...]
    n_items: int
    fmt: Literal["json", "delimited", "empty"]
    spans: tuple[LabelSpan, ...] = field(default=(), compare=False)


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
    normalised form (or one has none). Reading rules: :mod:`lm_eval_mlc.core.parsing`.
    """
    if not 0.0 <= cutoff <= 1.0:
        raise ValueError(f"cutoff must be in [0, 1], got {cutoff!r}")
    index = _label_index(tuple(label_names))
    text = text or ""
    body = text.strip()
    if not body:
        return ParsedLabels((), (), 0, "empty")
    locate = _Locator(body, len(text) - len(text.lstrip()))
    start = body.find("[")
    if start < 0:
        return _collect(
            _pieces(_first_paragraph(body), 0, index), index, cutoff, "delimited", locate
        )
    items, locate.read, locate.shift = _json_items(body, start, index)
    return _collect(items, index, cutoff, "json", locate)


def label_spans(text: str, label_names: Sequence[str], *, cutoff: float = 0.8) -> list[LabelSpan]:
    """One span per label that ``parse_labels(text, label_names, cutoff=cutoff).labels`` holds,
    at its first occurrence, sorted by ``start`` (see the module docstring)."""
    return list(parse_labels(text, label_names, cutoff=cutoff).spans)


def closes_item(quote: str, following_text: str, *, at_end: bool = True) -> bool:
    """Whether an item whose label text ends where `following_text` begins ends there, as
    :func:`parse_labels` reads it.

    `quote` is the item's :attr:`LabelSpan.quote`. `following_text` is read from its start,
    skipping what the normaliser drops after a label (whitespace and invisible characters
    throughout; ``_``/``-`` first, then trailing punctuation, stray quotes and brackets: ``joy-.``
    is ``joy``, ``joy.-`` is not); the first other character decides:

    * quoted (``"``, ``'``, ``\\"``): the closing quote closes (for ``\\"`` also a plain ``"``, as
      the retried reading sees both as ``"``), except a ``'`` followed by a word character
      (``'joy's'`` goes on, as single-quoted strings read). A blank line also closes,
      as an unclosed list is read up to its first blank line.
    * unquoted (``""``): a separator (``,``, ``;``, ``|``, ``]``, a line break), ``/``, the word
      ``and`` after a non-word character, ``"``, or ``'`` after a non-word character (a quote
      opens the next item in a bracketed list).

    Running out of `following_text` closes the item when `at_end` (the text is all that
    follows, as ``text[span.end:]`` is, or EOS comes next) and decides nothing otherwise: pass
    ``at_end=False`` for a token whose continuation is unknown, so that ``"."``, ``" "`` or
    ``" and"`` (which may go on as ``" android"``) do not count. With ``at_end=False`` a True
    holds whatever follows.

    Neither the label set nor the reading (list or delimited) is known here, so for unquoted
    items: ``/`` and ``and`` close as in a delimited answer, where they split only a piece that
    is not itself a label (``Rock and Roll``, ``Sci/Tech`` stay whole), while a bracketed list
    does not split on them; quotes close as in a bracketed list, while a delimited answer reads
    them as junk (``joy"x`` is not joy there); and an ``and`` or ``'`` right at the start is taken
    to follow a word character, as it does unless the label ends in punctuation (``C++``). A
    span's own text always closes (``closes_item(span.quote, text[span.end:])``). Raises
    ValueError on an unknown `quote`.
    """
    if quote not in _QUOTES:
        raise ValueError(f"Expected argument `quote` to be one of {_QUOTES}, but got {quote!r}")
    text, n = following_text, len(following_text)
    dropping = _DROP_SEPARATORS
    i = 0
    while i < n:
        c = text[i]
        if quote:
            if c == quote[-1] or (c == "\\" and text.startswith(quote, i)):
                if quote != "'":
                    return True
                if i + 1 < n:
                    return not _WORD_RE.match(text, i + 1)
                return at_end
            if c == "\n" and _BLANK_LINE_RE.match(text, i):
                return True
        else:
            if c in _ITEM_ENDS or c == "/" or c == '"':
                return True
            if i and not _WORD_RE.match(text[i - 1]):
                if c == "'":
                    return True
                if (word := _AND_RE.match(text, i)) is not None:
                    return word.end() < n or at_end
        if c not in dropping:
            if dropping is _DROP_TRAILING or c not in _DROP_TRAILING:
                return False
            dropping = _DROP_TRAILING
        i += 1
    return at_end


# --- reading -----------------------------------------------------------------------------------


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


class _Locator:
    """Turns an item's place in the text read into a span in the text as passed: `shift` maps
    offsets of the text read to offsets of `body` (the stripped text), which starts at `lead`."""

    def __init__(self, body: str, lead: int) -> None:
        self.body, self.lead = body, lead
        self.read, self.shift = body, _same  # the text read and its offsets in body

    def __call__(self, raw: str, start: int, end: int, opening: int, label: int) -> LabelSpan:
        a, b = _label_bounds(raw)
        if end - start == len(raw):  # verbatim
            start, end = start + a, start + b
        else:  # a JSON string with escapes: where its decoded characters a:b are written
            content = self.read[start:end]
            written = _written_offsets(content)
            if len(written) == len(raw) + 1:
                # An escape after the label stays in the span: closes_item reads no escapes.
                if "\\" not in content[written[b] :]:
                    end = start + written[b]
                start += written[a]
        quote = "" if opening < 0 else self.body[self.shift(opening)]
        if quote == "\\":  # a quote that was escaped twice
            quote = '\\"'
        return LabelSpan(self.lead + self.shift(start), self.lead + self.shift(end), label, quote)


def _same(offset: int) -> int:
    return offset


def _clean(text: str) -> str:
    """Drop invisible characters, collapse whitespace and strip edge junk, keeping case (the
    form reported as invalid)."""
    s = " ".join(_INVISIBLE_RE.sub("", text).split()).lstrip(_LEAD_JUNK)
    if enumerator := _ENUMERATOR_RE.match(s):
        s = s[enumerator.end() :].lstrip(_LEAD_JUNK)
    return s.rstrip(_TRAIL_JUNK)


def _label_bounds(raw: str) -> tuple[int, int]:
    """Where the label text of item `raw` lies in it: what `_clean` keeps, read in `raw` itself,
    less the edge `_`/`-`/space that `normalise_label` drops after it."""
    if raw and raw[0] not in _LEAD_EDGE and raw[-1] not in _TRAIL_EDGE and not raw[0].isdigit():
        return 0, len(raw)  # the common case: nothing to drop (no enumerator without a digit)
    start = _skip(raw, 0, _DROP_LEADING)
    if enumerator := _RAW_ENUMERATOR_RE.match(raw, start):
        start = _skip(raw, enumerator.end(), _DROP_LEADING)
    start = _skip(raw, start, _DROP_SEPARATORS)
    end = len(raw.rstrip(_DROP_TRAILING))
    end = len(raw[:end].rstrip(_DROP_SEPARATORS))
    return start, max(start, end)


def _written_offsets(content: str) -> list[int]:
    """For each offset of JSON string `content` once decoded, and for its end, the offset in
    `content` where that character is written (an escape is one character, a surrogate pair
    of escapes too, as `json` decodes them)."""
    offsets: list[int] = []
    literal = 0
    for escape in _JSON_ESCAPE_RE.finditer(content):
        offsets.extend(range(literal, escape.start()))
        offsets.append(escape.start())
        literal = escape.end()
    offsets.extend(range(literal, len(content) + 1))
    return offsets


def _skip(text: str, pos: int, chars: str) -> int:
    """The offset of the first character at or after `pos` that is not in `chars`."""
    return len(text) - len(text[pos:].lstrip(chars))


def _digits(key: str) -> str:
    """The digits of `key`, in order: a near miss must keep them ("S1" is never "S10")."""
    return "".join(_DIGIT_RE.findall(key))


def _first_paragraph(text: str) -> str:
    """`text` up to its first blank line (what follows is usually an explanation)."""
    blank = _BLANK_LINE_RE.search(text)
    return text[: blank.start()] if blank else text


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


def _collect(
    items: Iterator[_Item],
    index: _LabelIndex,
    cutoff: float,
    fmt: Literal["json", "delimited"],
    locate: _Locator,
) -> ParsedLabels:
    """Match items against the label set, applying the counting policy (see the reading
    rules), and locate each label's first item."""
    match = _Matcher(index, cutoff)
    spans: dict[str, LabelSpan] = {}
    invalid: list[str] = []
    seen: set[tuple[str, bool]] = set()
    inspected = 0
    for raw, is_str, start, end, opening in items:
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
        elif label not in spans:
            spans[label] = locate(raw, start, end, opening, index.rank[label])
    labels = tuple(sorted(spans, key=index.rank.__getitem__))
    located = tuple(sorted(spans.values(), key=lambda span: span.start))
    return ParsedLabels(labels, tuple(invalid), len(seen), fmt, located)
