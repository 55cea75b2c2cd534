"""Text normalisation shared by the matcher: character classes, patterns and the label key.

What an answer's items are made of and what the normaliser drops around a label; see
:mod:`lm_eval_mlc.core.matching` for how the reader uses them.
"""

import json
import re

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

_JSON = json.JSONDecoder()
_QUOTES = ("", '"', "'", '\\"')


def normalise_label(text: str) -> str:
    """The matching key of `text`: casefolded; invisible control and zero-width characters
    dropped; leading quotes/brackets/bullets/enumerators ("1. ") and trailing
    quotes/brackets/punctuation removed; ``_``, ``-`` and runs of whitespace inside read as one
    space (so ``no_emotion`` == ``No emotion``)."""
    return " ".join(_clean(text).casefold().translate(_SEPARATORS).split())


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
