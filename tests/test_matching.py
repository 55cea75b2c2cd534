"""Tests for lm_eval_mlc.core.matching: one matcher for the answer parser and the step finder.

The expected labels and span texts of the named cases are written by hand; the properties check
that every label the parser credits has exactly one span, that the text after each span closes
its item, and (per reading mode) that `closes_item` says True exactly when the parser reads the
label there, against `parse_labels` run on the whole text.
"""

import json
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lm_eval_mlc.core import parsing as label_parsing
from lm_eval_mlc.core.item_ends import UNQUOTED_CLOSERS, closes_item
from lm_eval_mlc.core.matching import (
    LabelSpan,
    label_spans,
    normalise_label,
    parse_labels,
)

EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
CODES = ("S1", "S10", "S11", "S2")
ABUSE = ("sex_harassment", "threat", "don't know", "Überraschung", "喜び", "joy")


def _check_spans(text, label_names, parsed):
    """What every parse must satisfy, whatever the text."""
    spans = parsed.spans
    assert {label_names[s.label] for s in spans} == set(parsed.labels)
    assert len({s.label for s in spans}) == len(spans)
    assert [s.start for s in spans] == sorted(s.start for s in spans)
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        written = text[s.start : s.end]
        assert written == written.strip() and normalise_label(written)
        assert s.quote in ("", '"', "'", '\\"')
        assert closes_item(s.quote, text[s.end :]), (text, s)
    assert label_spans(text, label_names) == list(spans)


# --- the named cases of issue 11, point 3 -----------------------------------------------------

# (text, label names, labels, span texts in answer order, quotes)
NAMED = [
    pytest.param(
        "sex harassment", ABUSE, ("sex_harassment",), ["sex harassment"], [""], id="space-for-_"
    ),
    pytest.param(
        "Sex-Harassment", ABUSE, ("sex_harassment",), ["Sex-Harassment"], [""], id="hyphen-for-_"
    ),
    pytest.param(
        '["sex harassment"]', ABUSE, ("sex_harassment",), ["sex harassment"], ['"'], id="json-_"
    ),
    pytest.param("sadnes", EMOTIONS, ("sadness",), ["sadnes"], [""], id="near-miss"),
    pytest.param('["joy", "sadnes"]', EMOTIONS, ("joy", "sadness"), ["joy", "sadnes"], ['"'] * 2,
                 id="near-miss-json"),
    pytest.param("joy and anger", EMOTIONS, ("anger", "joy"), ["joy", "anger"], [""] * 2,
                 id="and"),
    pytest.param("joy/anger", EMOTIONS, ("anger", "joy"), ["joy", "anger"], [""] * 2, id="slash"),
    pytest.param('["joy", "it\'s fine"]', ("joy", "it's fine"), ("joy", "it's fine"),
                 ["joy", "it's fine"], ['"'] * 2, id="apostrophe-label-in-json"),
    pytest.param("It's joy, anger", EMOTIONS, ("anger",), ["anger"], [""],
                 id="apostrophe-unquoted-stays-unquoted"),
    pytest.param("It's fear.\nanger", EMOTIONS, ("anger",), ["anger"], [""],
                 id="apostrophe-then-line"),
    pytest.param("['joy', 'anger']", EMOTIONS, ("anger", "joy"), ["joy", "anger"], ["'"] * 2,
                 id="single-quotes"),
    pytest.param('["Joy", "ANGER"]', EMOTIONS, ("anger", "joy"), ["Joy", "ANGER"], ['"'] * 2,
                 id="case-variants"),
    pytest.param('["S10"]', CODES, ("S10",), ["S10"], ['"'], id="S10-not-S1"),
    pytest.param("S1, S10", CODES, ("S1", "S10"), ["S1", "S10"], [""] * 2, id="S1-and-S10"),
    pytest.param("['don't know', 'joy']", ABUSE, ("don't know", "joy"), ["don't know", "joy"],
                 ["'"] * 2, id="apostrophe-label-single-quoted"),
    pytest.param("Don't know", ABUSE, ("don't know",), ["Don't know"], [""],
                 id="apostrophe-label-unquoted"),
    pytest.param('["Überraschung", "喜び"]', ABUSE, ("Überraschung", "喜び"),
                 ["Überraschung", "喜び"], ['"'] * 2, id="non-ascii"),
    pytest.param('["\\u00dcberraschung"]', ABUSE, ("Überraschung",), ["\\u00dcberraschung"],
                 ['"'], id="non-ascii-escaped"),
    pytest.param('[" \\u00fcberraschung.", "Joy\\n"]', ABUSE, ("Überraschung", "joy"),
                 ["\\u00fcberraschung", "Joy\\n"], ['"'] * 2, id="escapes-around-labels"),
    pytest.param("1. joy\n2. anger", EMOTIONS, ("anger", "joy"), ["joy", "anger"], [""] * 2,
                 id="numbered-lines"),
    pytest.param('["joy", "ang', EMOTIONS, ("joy",), ["joy"], ['"'], id="truncated-json"),
    pytest.param('["joy", "ange', EMOTIONS, ("anger", "joy"), ["joy", "ange"], ['"'] * 2,
                 id="truncated-json-near-miss"),
    pytest.param('[\\"joy\\", \\"anger\\"]', EMOTIONS, ("anger", "joy"), ["joy", "anger"],
                 ['\\"'] * 2, id="json-escaped-twice"),
    pytest.param('["joy."]', EMOTIONS, ("joy",), ["joy"], ['"'], id="junk-inside-string"),
    pytest.param('{"labels": ["fear", {"x": "joy"}]}', EMOTIONS, ("fear",), ["fear"], ['"'],
                 id="strings-in-objects-are-not-leaves"),
    pytest.param(' \n - **Joy**\n- anger.', EMOTIONS, ("anger", "joy"), ["Joy", "anger"],
                 [""] * 2, id="leading-space-and-markdown"),
    pytest.param('"joy", "anger"', EMOTIONS, ("anger", "joy"), ["joy", "anger"], [""] * 2,
                 id="quotes-without-brackets-are-junk"),
    pytest.param("[joy; anger]", EMOTIONS, ("anger", "joy"), ["joy", "anger"], [""] * 2,
                 id="bracketed-unquoted-split-on-delimiters"),
    pytest.param("[joy and anger]", EMOTIONS, (), [], [], id="bracketed-and-not-split"),
    pytest.param('["fear", "Fear", "joy", "fear"]', EMOTIONS, ("fear", "joy"), ["fear", "joy"],
                 ['"'] * 2, id="first-occurrence"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "names", "labels", "written", "quotes"), NAMED)
def test_named_cases_give_both_readers_the_same_labels(text, names, labels, written, quotes):
    parsed = parse_labels(text, names)
    assert parsed.labels == labels
    spans = label_spans(text, names)
    assert sorted(names[s.label] for s in spans) == sorted(labels)
    assert [text[s.start : s.end] for s in spans] == written
    assert [s.quote for s in spans] == quotes
    _check_spans(text, names, parsed)


def test_span_offsets_by_hand():
    assert label_spans('  ["joy", "Anger"]', EMOTIONS) == [
        LabelSpan(4, 7, 3, '"'),
        LabelSpan(11, 16, 0, '"'),
    ]
    assert label_spans('[\\"joy\\"]', EMOTIONS) == [LabelSpan(3, 6, 3, '\\"')]
    assert label_spans("none", EMOTIONS) == [] and label_spans("", EMOTIONS) == []
    assert label_spans(None, EMOTIONS) == []  # type: ignore[arg-type]


def test_cutoff_reaches_the_spans():
    assert label_spans("sadnx", EMOTIONS) == []
    assert label_spans("sadnx", EMOTIONS, cutoff=0.6) == [LabelSpan(0, 5, 4, "")]


def test_spans_past_the_inspection_cap_are_not_found():
    text = ", ".join(["banana"] * 5 + [f"x{i}" for i in range(60)] + ["joy"])
    assert parse_labels(text, EMOTIONS).labels == () == tuple(label_spans(text, EMOTIONS))


# --- closes_item ----------------------------------------------------------------------------

CLOSES = [
    ('"', '"]', True), ('"', '."]', True), ('"', ' "', True), ('"', "'\"", True),
    ('"', ", anger\"", False), ('"', "s\"", False), ('"', "\\n\"", False), ('"', "", True),
    ('"', "\n\nmore", True), ('"', "-.\"", True), ('"', ".-\"", False),
    ("'", "'", True), ("'", "',", True), ("'", "'s", False), ("'", "\"'", True),
    ('\\"', '\\"]', True), ('\\"', '"', True), ('\\"', "\\x", False),
    ("", ",", True), ("", ";", True), ("", "|", True), ("", "]", True), ("", "\n", True),
    ("", "\u2028", True), ("", "/anger", True), ("", " and anger", True), ("", " AND x", True),
    ("", ". and x", True), ("", "and x", False), ("", " android", False), ("", "_and x", False),
    ("", '"anger"', True), ("", " 'anger'", True), ("", "'s", False), ("", "", True),
    ("", ".", True), ("", "!!", True), ("", " x", False), ("", ".x", False), ("", "-", True),
    ("", "- x", False), ("", "\u200b,", True), ("", "**:", True), ("", "x", False),
]  # fmt: skip


@pytest.mark.parametrize(("quote", "following", "expected"), CLOSES)
def test_closes_item_by_hand(quote, following, expected):
    assert closes_item(quote, following) is expected


@pytest.mark.parametrize(
    ("quote", "token", "expected"),
    [
        ("", ",", True), ("", ".", False), ("", " ", False), ("", " and", False),
        ("", " and ", True), ("", "", False), ("", ".,", True), ("", "/", True),
        ('"', '"', True), ('"', ".", False), ("'", "'", False), ("'", "']", True),
        ('"', "\n", False), ('"', "\n\n", True),
    ],
)  # fmt: skip
def test_closes_item_on_a_token_of_unknown_continuation(quote, token, expected):
    assert closes_item(quote, token, at_end=False) is expected


def test_closes_item_rejects_an_unknown_quote():
    with pytest.raises(ValueError, match="Expected argument `quote`"):
        closes_item("`", "`")


def test_unquoted_closers_are_the_characters_that_can_close():
    for c in UNQUOTED_CLOSERS:
        assert closes_item("", c), repr(c)
    for c in ',;|]\n\r\x85\u2028\u2029/"':
        assert c in UNQUOTED_CLOSERS and closes_item("", c + "x", at_end=False), repr(c)
    for c in "xé1 -_\u200b\t":
        assert c not in UNQUOTED_CLOSERS and not closes_item("", c + "x"), repr(c)


def _tails(pieces):
    return st.lists(st.sampled_from(pieces), max_size=8).map("".join)


_TAIL = _tails([*"xaAnNdD é_-.,;|]/!*)(:\t\n\u200b\u2028", "and", " and ", "\n\n"])
_QUOTED_TAIL = _tails([*"xas ._-,]'\"\\\n[{}:", "\n\n"])


def _reads_joy_at(text, start):
    """Whether the parser reads `joy` (label 0) as written at `text[start:start + 3]`."""
    spans = parse_labels(text, ["joy"], cutoff=1.0).spans  # no near misses
    return any(s.start == start and s.end == start + 3 for s in spans)


@settings(max_examples=400)
@given(tail=_TAIL)
def test_closes_item_is_exact_in_a_delimited_answer(tail):
    # Quotes and "[" left out: a delimited answer reads quotes as junk (closes_item reads them
    # as in a list), and a "[" would make it a list.
    assert closes_item("", tail) == _reads_joy_at("joy" + tail, 0)


@settings(max_examples=400)
@given(tail=st.tuples(_tails(['"', "'", " "]), _TAIL).map("".join))
def test_closes_item_is_exact_in_a_bracketed_unquoted_list(tail):
    reads = _reads_joy_at("[joy" + tail, 1)
    if reads:
        assert closes_item("", tail)
    elif not re.search("/|and", tail, re.IGNORECASE):  # a list does not split on them
        assert not closes_item("", tail)


@settings(max_examples=400)
@given(tail=_QUOTED_TAIL, quote=st.sampled_from(['"', "'"]))
def test_closes_item_is_exact_in_a_quoted_string(tail, quote):
    # A blank line closes only in an unclosed list, so a tail holding one and then a quote that
    # would close the list is left out.
    if re.search(r"\n\s*\n", tail):
        tail = tail[: re.search(r"\n\s*\n", tail).start()] + "\n\n"
    assert closes_item(quote, tail) == _reads_joy_at(f"[{quote}joy{tail}", 2)


@settings(max_examples=300)
@given(
    quote=st.sampled_from(["", '"', "'", '\\"']),
    token=_QUOTED_TAIL | _TAIL,
    rest=_QUOTED_TAIL | _TAIL,
)
def test_a_token_that_closes_closes_whatever_follows(quote, token, rest):
    if closes_item(quote, token, at_end=False):
        assert closes_item(quote, token + rest)
        assert closes_item(quote, token + rest, at_end=False)


# --- properties: random label sets and answers ----------------------------------------------

_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-'éüß喜び"


def _fair_label(name: str) -> bool:
    """A label the parser can hold as written: its edges are letters or digits (see
    `closes_item`), an apostrophe sits inside a word, and it has no "and" or "/" of its own."""
    return bool(
        normalise_label(name)
        and re.fullmatch(r"[^\W_](?:.*[^\W_])?", name)
        and not re.search(r"'(?!\w)|(?<!\w)'|\band\b", name, re.IGNORECASE)
    )


label_sets = st.sampled_from([EMOTIONS, CODES, ABUSE]) | st.lists(
    st.text(alphabet=_LABEL_CHARS, min_size=1, max_size=12).filter(_fair_label),
    min_size=1,
    max_size=8,
    unique_by=normalise_label,
).map(tuple)


def _variant(name: str, how: str) -> str:
    return {
        "as-is": name,
        "lower": name.lower(),
        "upper": name.upper(),
        "title": name.title(),
        "spaces": name.replace("_", " "),
        "hyphens": name.replace("_", "-").replace(" ", "-"),
    }[how]


def _is_json(text):
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@st.composite
def clean_answers(draw):
    """(label names, answer, labels it names): a well-formed answer in one of the styles models
    use, each label written as a case or separator variant."""
    names = draw(label_sets)
    chosen = draw(st.lists(st.sampled_from(names), max_size=2 * len(names)))
    how = st.sampled_from(["as-is", "lower", "upper", "title", "spaces", "hyphens"])
    written = [_variant(name, draw(how)) for name in chosen]
    written = [
        w if normalise_label(w) == normalise_label(n) and _fair_label(w) else n
        for w, n in zip(written, chosen, strict=True)
    ]
    style = draw(st.sampled_from(["json", "json-ascii", "single", "bare-list", "delimited"]))
    if style.startswith("json"):
        body = json.dumps(written, ensure_ascii=style == "json-ascii")
    elif style == "single":
        body = "[" + ", ".join(f"'{w}'" for w in written) + "]"
    else:
        wrap = st.sampled_from(["{}", "**{}**", "{}.", "`{}`", " {} ", "- {}"])
        items = [draw(wrap).format(w) for w in written]
        if style == "bare-list":
            body = "[" + ", ".join(items) + "]"
            assume(not _is_json(body))  # [0] is a list of a number
        else:
            sep = draw(st.sampled_from([", ", "; ", " | ", "\n", "\n- ", " and ", "/", ",\n"]))
            body = sep.join(items) if items else "[]"  # "none" may be a label
    if style != "delimited":
        body = draw(st.sampled_from(["", "Answer: ", "Sure! The labels are "])) + body
    body += draw(st.sampled_from(["", "\n\nBecause it is so, joy.", "  "]))
    return names, body, set(chosen)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(case=clean_answers())
def test_clean_answers_give_the_written_labels_to_both_readers(case):
    names, text, chosen = case
    parsed = parse_labels(text, names)
    assert set(parsed.labels) == chosen, text
    assert parsed.invalid == ()
    _check_spans(text, names, parsed)
    for s in parsed.spans:
        written = text[s.start : s.end]
        if "\\" in written:  # a JSON string with escapes: the span is written with them
            written = json.loads(f'"{written}"')
        assert normalise_label(written) == normalise_label(names[s.label])


@st.composite
def noisy_answers(draw):
    """(label names, answer): labels, variants, near misses, separators, quotes, apostrophes and
    junk run together in any order."""
    names = draw(label_sets)
    name = st.sampled_from(names)
    piece = st.one_of(
        name,
        name.map(str.upper),
        name.map(str.title),
        name.map(lambda n: n.replace("_", " ")),
        name.map(lambda n: n[:-1] if len(n) > 5 else n),  # a near miss
        st.sampled_from(["[", "]", '"', "'", ", ", ";", " | ", "\n", "\n\n", " and ", "/"]),
        st.sampled_from(["It's ", "don't", ".", "!", "**", "1. ", "- ", " ", "\\", '\\"']),
        st.sampled_from(["banana", "none", "null", "{", "}", ":", "\u200b", "_", "-"]),
    )
    return names, "".join(draw(st.lists(piece, max_size=25)))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(case=noisy_answers())
def test_noisy_answers_give_one_span_per_parsed_label(case):
    names, text = case
    _check_spans(text, names, parse_labels(text, names))


@settings(max_examples=300)
@given(text=st.text(alphabet="[]{}\"'\\,;|/ \n-_.:joyangerS10null", max_size=60))
def test_structured_noise_gives_one_span_per_parsed_label(text):
    _check_spans(text, EMOTIONS, parse_labels(text, EMOTIONS))
    _check_spans(text, CODES, parse_labels(text, CODES))


@settings(max_examples=300)
@given(text=st.text(max_size=80))
def test_any_text_gives_one_span_per_parsed_label(text):
    _check_spans(text, EMOTIONS, parse_labels(text, EMOTIONS))


# --- where things live ----------------------------------------------------------------------


def test_whitespace_table_holds_every_space_character():
    from lm_eval_mlc.core import _text

    assert set(_text._WHITESPACE) == {
        c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()
    }


def test_the_parser_module_is_the_shared_matcher():
    from lm_eval_mlc.core import matching

    assert label_parsing.parse_labels is matching.parse_labels
    assert label_parsing.ParsedLabels is matching.ParsedLabels
    assert label_parsing.normalise_label is normalise_label


def test_core_imports_no_torch_transformers_or_lm_eval():
    code = (
        "import sys, lm_eval_mlc.core.matching, lm_eval_mlc.core.parsing;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'lm_eval')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
