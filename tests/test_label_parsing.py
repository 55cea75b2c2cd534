"""Tests for lm_eval_mlc.core.parsing: reading generated answers as label sets."""

import json
import random
import string
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lm_eval_mlc.core.parsing import (
    NONE_MARKERS,
    TRUNCATED_ITEM,
    ParsedLabels,
    invalid_rate,
    normalise_label,
    parse_labels,
    to_indicator,
)

EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
EMOTIONS_NEUTRAL = (*EMOTIONS, "neutral")
CODES = ("S1", "S10", "S11", "S2")
MANY = tuple(f"label_{i}" for i in range(500))


def _cap(label_names):
    return 4 * len(label_names) + 16


def _best_seconds(fn, repeats=3):
    """Fastest of a few runs, so that a busy machine does not fail a timing check."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# (text, labels, invalid, n_items, fmt), against EMOTIONS
CASES = [
    pytest.param('["joy", "anger"]', ("anger", "joy"), (), 2, "json", id="clean-json"),
    pytest.param("['joy']", ("joy",), (), 1, "json", id="single-quotes"),
    pytest.param(
        "['joy', 'it's odd']", ("joy",), ("it's odd",), 2, "json", id="single-quotes-apostrophe"
    ),
    pytest.param('Sure! The emotions are ["joy"].', ("joy",), (), 1, "json", id="json-in-prose"),
    pytest.param(
        '["fear"]\n\nThe [scary] part, anger', ("fear",), (), 1, "json", id="json-then-prose"
    ),
    pytest.param('["joy", "ang', ("joy",), ("ang",), 2, "json", id="unbalanced-cut-in-string"),
    pytest.param('["joy", "anger"', ("anger", "joy"), (), 2, "json", id="unbalanced-no-close"),
    pytest.param(
        '["joy", "anger"\n\nHope this helps, really',
        ("anger", "joy"),
        (),
        2,
        "json",
        id="unbalanced-then-blank-line",
    ),
    pytest.param("[Joy, anger]", ("anger", "joy"), (), 2, "json", id="unquoted-list"),
    pytest.param(
        '[["joy"], ["anger", ["fear"]]]', ("anger", "fear", "joy"), (), 3, "json", id="nested"
    ),
    pytest.param(
        '["joy", 1, 2.5, null, true, {"a": 1}]',
        ("joy",),
        ("1", "2.5", "None", "True", "{'a': 1}"),
        6,
        "json",
        id="non-string-items",
    ),
    pytest.param('["joy, anger"]', (), ("joy, anger",), 1, "json", id="json-string-not-split"),
    pytest.param("joy, anger", ("anger", "joy"), (), 2, "delimited", id="comma-text"),
    pytest.param(
        "joy; anger | fear / sadness",
        ("anger", "fear", "joy", "sadness"),
        (),
        4,
        "delimited",
        id="other-delimiters",
    ),
    pytest.param("Joy and anger", ("anger", "joy"), (), 2, "delimited", id="and"),
    pytest.param(
        "joy, sadness, and anger", ("anger", "joy", "sadness"), (), 3, "delimited", id="oxford"
    ),
    pytest.param("- joy\n- anger", ("anger", "joy"), (), 2, "delimited", id="newline-bullets"),
    pytest.param("* Joy\n• fear", ("fear", "joy"), (), 2, "delimited", id="other-bullets"),
    pytest.param(
        "1. Joy\n2) Sadness.", ("joy", "sadness"), (), 2, "delimited", id="numbered-lines"
    ),
    pytest.param("**Joy**, `anger`:", ("anger", "joy"), (), 2, "delimited", id="markdown"),
    pytest.param(
        "joy\n\nThe text also shows anger, fear", ("joy",), (), 1, "delimited", id="blank-line"
    ),
    pytest.param("  JOY ", ("joy",), (), 1, "delimited", id="upper-and-spaces"),
    pytest.param("Anger", ("anger",), (), 1, "delimited", id="capitalised"),
    pytest.param('["  Sadness ", "FEAR"]', ("fear", "sadness"), (), 2, "json", id="json-case"),
    pytest.param("sadnes", ("sadness",), (), 1, "delimited", id="near-miss-sadnes"),
    pytest.param('["joyy", "angr"]', ("anger", "joy"), (), 2, "json", id="near-miss-json"),
    pytest.param("Suprise", ("surprise",), (), 1, "delimited", id="near-miss-suprise"),
    pytest.param("excitement", (), ("excitement",), 1, "delimited", id="excitement-is-not-joy"),
    pytest.param("jo", (), ("jo",), 1, "delimited", id="short-item-not-fuzzy"),
    pytest.param("banana", (), ("banana",), 1, "delimited", id="garbage"),
    pytest.param(
        '["joy", "Banana", "anger"]', ("anger", "joy"), ("Banana",), 3, "json", id="mixed"
    ),
    pytest.param(
        '["joy", "Joy", " joy ", "anger", "joy"]', ("anger", "joy"), (), 2, "json", id="dupes"
    ),
    pytest.param("banana, Banana, banana.", (), ("banana",), 1, "delimited", id="dupe-invalid"),
    pytest.param("None", (), (), 0, "delimited", id="none"),
    pytest.param("none.", (), (), 0, "delimited", id="none-punctuated"),
    pytest.param("N/A", (), (), 0, "delimited", id="n/a"),
    pytest.param("Neutral", (), (), 0, "delimited", id="neutral-marker"),
    pytest.param("No emotions", (), (), 0, "delimited", id="no-emotions"),
    pytest.param("no_emotion", (), (), 0, "delimited", id="no-emotion-underscore"),
    pytest.param("nothing", (), (), 0, "delimited", id="nothing"),
    pytest.param('["none"]', (), (), 0, "json", id="json-none"),
    pytest.param('["joy", "none"]', ("joy",), (), 1, "json", id="json-label-and-none"),
    pytest.param("", (), (), 0, "empty", id="empty-string"),
    pytest.param("  \n\t ", (), (), 0, "empty", id="whitespace"),
    pytest.param("[]", (), (), 0, "json", id="empty-list"),
    pytest.param("Answer: [ ]", (), (), 0, "json", id="empty-list-in-prose"),
    pytest.param('["", "joy", " "]', ("joy",), (), 1, "json", id="empty-strings-dropped"),
]


@pytest.mark.parametrize(("text", "labels", "invalid", "n_items", "fmt"), CASES)
def test_parse_cases(text, labels, invalid, n_items, fmt):
    assert parse_labels(text, EMOTIONS) == ParsedLabels(labels, invalid, n_items, fmt)


@pytest.mark.parametrize(
    ("text", "labels", "n_items"),
    [
        pytest.param("neutral", ("neutral",), 1, id="label-wins-over-marker"),
        pytest.param('["Neutral", "joy"]', ("joy", "neutral"), 2, id="label-wins-in-json"),
        pytest.param("none", (), 0, id="other-markers-still-markers"),
    ],
)
def test_label_named_like_none_marker(text, labels, n_items):
    parsed = parse_labels(text, EMOTIONS_NEUTRAL)
    assert (parsed.labels, parsed.invalid, parsed.n_items) == (labels, (), n_items)


@pytest.mark.parametrize(
    ("text", "label_names", "labels", "invalid"),
    [
        pytest.param("S1", CODES, ("S1",), (), id="S1"),
        pytest.param("s10", CODES, ("S10",), (), id="S10"),
        pytest.param('["S11", "S1", "S10"]', CODES, ("S1", "S10", "S11"), (), id="all-in-order"),
        pytest.param("S1", ("S10", "S11"), (), ("S1",), id="S1-not-fuzzy-S10"),
        pytest.param("S10", ("S1", "S11"), (), ("S10",), id="S10-not-fuzzy-S1"),
        pytest.param("S100", CODES, (), ("S100",), id="S100-not-S10"),
        pytest.param("label_12", MANY[:10], (), ("label_12",), id="digits-must-agree"),
        pytest.param("Lable 12", MANY, ("label_12",), (), id="typo-keeps-digits"),
        pytest.param("Label 12", MANY, ("label_12",), (), id="underscore-as-space"),
    ],
)
def test_numbered_labels(text, label_names, labels, invalid):
    parsed = parse_labels(text, label_names)
    assert (parsed.labels, parsed.invalid) == (labels, invalid)


def test_short_items_never_fuzzy_even_at_low_cutoff():
    assert parse_labels("S2", ("S1",), cutoff=0.5).invalid == ("S2",)
    assert parse_labels("sad", ("mad",), cutoff=0.5).invalid == ("sad",)


def test_cutoff_is_used():
    assert parse_labels("sadnx", EMOTIONS).labels == ()  # ratio 2 * 4 / 12
    assert parse_labels("sadnx", EMOTIONS, cutoff=0.6).labels == ("sadness",)
    assert parse_labels("sadnes", EMOTIONS, cutoff=1.0).labels == ()


@pytest.mark.parametrize(
    ("text", "labels", "invalid", "n_items"),
    [
        # Before the shared matcher (lm_eval_mlc.core.matching), the text between the quoted
        # strings of a list that is not JSON was split on "," only, and "]" did not end a
        # delimited piece, so the step finder and the parser could not share one rule for where
        # an unquoted item ends. Now both split on the same delimiters.
        pytest.param("[joy; anger]", ("anger", "joy"), (), 2, id="was-invalid-'joy; anger'"),
        pytest.param("[joy\nanger]", ("anger", "joy"), (), 2, id="was-invalid-'joy anger'"),
        pytest.param("[fear | joy]", ("fear", "joy"), (), 2, id="was-invalid-'fear | joy'"),
        pytest.param("joy] anger", ("anger", "joy"), (), 2, id="was-invalid-'joy] anger'"),
        # Unchanged: "/" and "and" split delimited text only ("and so on" after a list stays
        # one item).
        pytest.param("[joy and anger]", (), ("joy and anger",), 1, id="list-and-stays"),
        pytest.param('["joy" and "anger"]', ("anger", "joy"), ("and",), 3, id="list-and-item"),
        pytest.param("[sadness/fear", (), ("sadness/fear",), 1, id="list-slash-stays"),
    ],
)
def test_unquoted_pieces_split_alike_in_lists_and_delimited_text(text, labels, invalid, n_items):
    parsed = parse_labels(text, EMOTIONS)
    assert (parsed.labels, parsed.invalid, parsed.n_items) == (labels, invalid, n_items)


def test_parsed_labels_carry_where_each_label_was_written():
    text = '["Anger", "joy", "anger"]'
    parsed = parse_labels(text, EMOTIONS)
    assert [(text[s.start : s.end], EMOTIONS[s.label]) for s in parsed.spans] == [
        ("Anger", "anger"),
        ("joy", "joy"),
    ]
    # Where the labels are is not part of what was parsed.
    assert parsed == ParsedLabels(("anger", "joy"), (), 2, "json")


def test_labels_with_delimiters_stay_whole():
    names = ("World", "Sports", "Business", "Sci/Tech", "Rock and Roll")
    parsed = parse_labels("sci/tech, rock and roll\nsports/world", names)
    assert parsed.labels == ("World", "Sports", "Sci/Tech", "Rock and Roll")
    assert (parsed.invalid, parsed.n_items) == ((), 4)


def test_hundreds_of_labels():
    order = list(MANY)
    random.Random(0).shuffle(order)
    parsed = parse_labels(json.dumps(order), MANY)
    assert parsed == ParsedLabels(MANY, (), 500, "json")
    assert parse_labels('["label_499", "label_7", "label_70"]', MANY).labels == (
        "label_7",
        "label_70",
        "label_499",
    )


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bad_cutoff(bad):
    with pytest.raises(ValueError, match="cutoff"):
        parse_labels("joy", EMOTIONS, cutoff=bad)


@pytest.mark.parametrize("names", [("joy", "Joy "), ("no_emotion", "no emotion"), ("joy", "[]")])
def test_label_names_must_normalise_distinctly(names):
    with pytest.raises(ValueError, match="normalises"):
        parse_labels("joy", names)


def test_normalise_label():
    assert normalise_label("  - **No_Emotion**.") == "no emotion"
    assert normalise_label('"Joy":') == "joy"
    assert normalise_label("2. Sci/Tech") == "sci/tech"
    assert "n/a" in NONE_MARKERS


# --- long and hostile outputs ---------------------------------------------------------------


def _garbage_words(n, length, seed=0):
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(length)) for _ in range(n)]


LONG = [
    pytest.param("banana, " * 12_500, EMOTIONS, (), 2, id="repeated-garbage"),
    pytest.param("joy, " * 20_000, EMOTIONS, ("joy",), 2, id="repeated-label"),
    pytest.param(json.dumps(["joy"] * 20_000), EMOTIONS, ("joy",), 2, id="long-json"),
    pytest.param('["joy", ' + '"x", ' * 20_000, EMOTIONS, ("joy",), 3, id="long-truncated-json"),
    pytest.param("x" * 100_000, EMOTIONS, (), 1, id="one-huge-item"),
    pytest.param(json.dumps(["x" * 100_000]), EMOTIONS, (), 1, id="one-huge-json-item"),
    pytest.param('["' + '\\"' * 50_000, EMOTIONS, (), 1, id="escaped-quotes"),
    pytest.param(" 'a" * 33_000, EMOTIONS, (), 1, id="unclosed-single-quotes"),
    pytest.param("[" * 100_000, EMOTIONS, (), 0, id="open-brackets"),
    pytest.param("[" + "[], " * 25_000, EMOTIONS, (), 0, id="empty-lists-unclosed"),
    pytest.param(" , -" * 25_000 + "joy", EMOTIONS, ("joy",), 1, id="junk-pieces"),
    pytest.param(
        ", ".join(_garbage_words(12_000, 8))[:100_000],
        tuple(_garbage_words(500, 8, seed=1)),
        (),
        _cap(range(500)) + 1,
        id="500-word-labels-distinct-garbage",
    ),
    pytest.param(
        ", ".join(f"label_{i}x" for i in range(20_000))[:100_000],
        MANY,
        MANY,  # label_0x..label_499x are near misses; label_500x... are not
        _cap(MANY) + 1,
        id="500-labels-near-miss-flood",
    ),
]


@pytest.mark.parametrize(("text", "label_names", "labels", "n_items"), LONG)
def test_long_outputs_are_fast_and_bounded(text, label_names, labels, n_items):
    parse_labels("warm up", label_names)
    assert len(text) >= 99_000
    parsed = parse_labels(text, label_names)
    assert parsed.labels == labels
    assert parsed.n_items == n_items
    assert len(parsed.invalid) == n_items - len(labels)
    if n_items > _cap(label_names):
        assert parsed.invalid[-1] == TRUNCATED_ITEM
    # A guard against catastrophic backtracking (seconds to hours), not a speed claim.
    assert _best_seconds(lambda: parse_labels(text, label_names)) < 1.0


# --- indicators and rates -------------------------------------------------------------------


def test_to_indicator_round_trip():
    parsed = parse_labels('["surprise", "anger"]', EMOTIONS)
    vector = to_indicator(parsed.labels, EMOTIONS)
    assert vector.dtype == np.int8
    assert vector.tolist() == [1, 0, 0, 0, 0, 1]
    assert tuple(np.asarray(EMOTIONS)[vector.astype(bool)]) == parsed.labels
    assert to_indicator([], EMOTIONS).tolist() == [0] * 6


def test_to_indicator_rejects_unknown_name():
    with pytest.raises(ValueError, match="banana"):
        to_indicator(["joy", "banana"], EMOTIONS)
    with pytest.raises(ValueError, match="Joy"):
        to_indicator(["Joy"], EMOTIONS)  # canonical names only


def test_invalid_rate():
    parsed = [parse_labels(t, EMOTIONS) for t in ('["joy", "banana"]', "anger, kiwi, fear", "")]
    assert invalid_rate(parsed) == pytest.approx(2 / 5)
    assert invalid_rate(iter(parsed)) == pytest.approx(2 / 5)
    assert invalid_rate([]) == 0.0
    assert invalid_rate([parse_labels("none", EMOTIONS)]) == 0.0


# --- properties -----------------------------------------------------------------------------


def _valid_label(name: str) -> bool:
    return bool(normalise_label(name))


label_sets = st.sampled_from([EMOTIONS, EMOTIONS_NEUTRAL, CODES, MANY[:40]]) | st.lists(
    st.text(min_size=1, max_size=15).filter(_valid_label),
    min_size=1,
    max_size=10,
    unique_by=normalise_label,
).map(tuple)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), label_names=label_sets, ensure_ascii=st.booleans())
def test_json_rendered_subset_round_trips(data, label_names, ensure_ascii):
    chosen = data.draw(st.lists(st.sampled_from(label_names), max_size=3 * len(label_names)))
    parsed = parse_labels(json.dumps(chosen, ensure_ascii=ensure_ascii), label_names)
    assert parsed.labels == tuple(name for name in label_names if name in set(chosen))
    assert parsed.invalid == ()
    assert parsed.fmt == "json"


@settings(max_examples=200)
@given(data=st.data(), label_names=st.sampled_from([EMOTIONS, CODES, MANY[:40]]))
def test_delimited_subset_round_trips(data, label_names):
    # At most 3 picks per label: below the inspection cap (4 per label + 16).
    chosen = data.draw(
        st.lists(st.sampled_from(label_names), min_size=1, max_size=3 * len(label_names))
    )
    sep = data.draw(st.sampled_from([", ", "\n", "; ", " | ", "\n- "]))
    expected = tuple(name for name in label_names if name in set(chosen))
    parsed = parse_labels(sep.join(chosen), label_names)
    assert parsed == ParsedLabels(expected, (), len(expected), "delimited")


def _check_invariants(parsed, label_names):
    assert set(parsed.labels) <= set(label_names)
    assert list(parsed.labels) == sorted(parsed.labels, key=label_names.index)
    assert len(parsed.invalid) <= parsed.n_items <= _cap(label_names) + 1
    assert parsed.fmt in ("json", "delimited", "empty")


@settings(max_examples=500)
@given(text=st.text(), label_names=st.sampled_from([EMOTIONS, EMOTIONS_NEUTRAL, CODES]))
def test_never_raises_on_any_text(text, label_names):
    _check_invariants(parse_labels(text, label_names), label_names)


@settings(max_examples=500)
@given(text=st.text(alphabet="[]{}\"'\\,;|/ \n-_.:joyangerS10null"))
def test_never_raises_on_structured_noise(text):
    _check_invariants(parse_labels(text, EMOTIONS), EMOTIONS)
    _check_invariants(parse_labels(text, CODES), CODES)
