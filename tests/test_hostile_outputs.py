"""Hostile model output through the answer parser and `process_results`.

Whatever a model generates (nothing, junk, repeats, broken JSON, 100k characters, control
characters) and whatever probabilities a payload carries (NaN, inf, negative, above 1), a doc's
record must come out without an exception, with probabilities finite and in [0, 1], predictions
in {0, 1}, and every answer item that matches no label counted in `invalid_label_rate`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_eval_mlc.core.parsing import TRUNCATED_ITEM, parse_labels
from lm_eval_mlc.core.payload import FORMAT, VERSION
from lm_eval_mlc.data.goemotions.labels import label_names
from lm_eval_mlc.harness import records as harness
from lm_eval_mlc.harness.filters import strategy_view

NAMES = label_names("clusters")  # joy, optimism, admiration, surprise, fear, sadness, anger
DOC = {"label_names": NAMES, "labels": ["joy", "anger"], "annotator_probs": []}


def _record(view: Any, doc: dict[str, Any] = DOC) -> dict[str, Any]:
    """The doc's record, checked against the invariants every record must keep."""
    out = harness.process_results(doc, [view])
    record = out["micro_f1"]
    assert all(out[key] is record for key in harness.METRIC_KEYS)
    n = len(doc["label_names"])
    probs = np.asarray(record["probs"], dtype=float)
    assert probs.shape == (n,) and np.isfinite(probs).all()
    assert ((probs >= 0) & (probs <= 1)).all()
    assert len(record["y_pred"]) == n and set(record["y_pred"]) <= {0, 1}
    assert 0 <= record["n_invalid"] <= record["n_items"]
    json.dumps(record, allow_nan=False)  # --log_samples must be able to store it
    return record


def _predicted(record: dict[str, Any]) -> list[str]:
    return [name for name, on in zip(NAMES, record["y_pred"], strict=True) if on]


# --- generated text ---------------------------------------------------------------------------

# (answer, predicted labels, distinct items, invalid items)
ANSWERS = [
    pytest.param("", [], 0, 0, id="empty"),
    pytest.param(None, [], 0, 0, id="none-from-backend"),
    pytest.param(" \n\t \r\n ", [], 0, 0, id="whitespace"),
    pytest.param("[]", [], 0, 0, id="empty-list"),
    pytest.param('["banana", "kiwi"]', [], 2, 2, id="outside-label-set"),
    pytest.param("I cannot help with that.", [], 1, 1, id="refusal-prose"),
    pytest.param('["joy", "joy", "JOY", " joy "]', ["joy"], 1, 0, id="repeated-json"),
    pytest.param("joy, Joy, joy\njoy", ["joy"], 1, 0, id="repeated-delimited"),
    pytest.param('["kiwi", "Kiwi", "kiwi"]', [], 1, 1, id="repeated-invalid-counts-once"),
    pytest.param('["joy", "anger"', ["joy", "anger"], 2, 0, id="unclosed-list"),
    pytest.param('joy"]', ["joy"], 1, 0, id="unopened-list"),
    pytest.param("[[[", [], 0, 0, id="open-brackets"),
    pytest.param("]]]", [], 0, 0, id="close-brackets"),
    pytest.param('["joy", "ang', ["joy"], 2, 1, id="cut-mid-string"),
    pytest.param('{"labels": ["fear"]}', ["fear"], 1, 0, id="list-inside-object"),
    pytest.param('["joy", 1, null, {"a": []}]', ["joy"], 4, 3, id="non-string-items"),
    pytest.param('[\\"joy\\", \\"anger\\"]', ["joy", "anger"], 2, 0, id="json-escaped-twice"),
    pytest.param("JOY ,  Anger ", ["joy", "anger"], 2, 0, id="case-and-spaces"),
    pytest.param("\x00joy\x07, an\x1bger\x7f", ["joy", "anger"], 2, 0, id="control-chars"),
    pytest.param("jo\u200by, \ufeffanger", ["joy", "anger"], 2, 0, id="zero-width-chars"),
    pytest.param(
        "joy\u2028anger\u2029fear\x85sadness",
        ["joy", "fear", "sadness", "anger"],
        4,
        0,
        id="unicode-line-breaks",
    ),
    pytest.param("\x1b[31mjoy\x1b[0m", [], 1, 1, id="ansi-colour-codes"),  # one invalid item
    pytest.param("joy\n\nBecause the text also shows anger.", ["joy"], 1, 0, id="explanation"),
]


@pytest.mark.parametrize(("answer", "labels", "n_items", "n_invalid"), ANSWERS)
def test_hostile_answers_give_valid_records(
    answer: str | None, labels: list[str], n_items: int, n_invalid: int
) -> None:
    record = _record({"strategy": "generated", "text": answer})
    assert _predicted(record) == [name for name in NAMES if name in labels]
    assert record["probs"] == [float(on) for on in record["y_pred"]]
    assert (record["n_items"], record["n_invalid"]) == (n_items, n_invalid)
    assert record["y_true"] == [int(name in DOC["labels"]) for name in NAMES]


def test_plain_text_result_is_read_as_the_generated_view() -> None:
    assert _record('["fear", "banana"]') == _record(
        {"strategy": "generated", "text": "fear, banana"}
    )


def test_labels_that_differ_only_in_case_or_spacing_are_rejected_as_a_label_set() -> None:
    # The label set itself must be unambiguous; loaders report such sets (test_hostile_data).
    with pytest.raises(ValueError, match="already taken"):
        parse_labels("joy", ["Joy", " joy"])


def test_invalid_label_rate_matches_a_hand_count() -> None:
    answers = [
        '["joy", "anger"]',  # 2 items, 0 invalid
        '["joy", "banana"]',  # 2 items, 1 invalid
        "",  # nothing
        "joy, joy, JOY",  # 1 item (repeats count once), 0 invalid
        '["kiwi", "kiwi", "mango"',  # 2 items, 2 invalid
        "none",  # a none-marker: no item
        "[1, null]",  # 2 items, 2 invalid
        "sadnes",  # a near miss of sadness: 1 item, 0 invalid
    ]
    records = [_record({"strategy": "generated", "text": text}) for text in answers]
    assert [r["n_invalid"] for r in records] == [0, 1, 0, 0, 2, 0, 2, 0]
    assert harness.invalid_label_rate(records) == pytest.approx(5 / 10)
    assert harness.invalid_label_rate([records[2], records[5]]) == 0.0  # no items at all


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_any_text_gives_a_valid_record(text: str) -> None:
    _record({"strategy": "generated", "text": text})


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*NAMES, "Joy", " ANGER ", "banana", "", "none", "[", "]", '"', "'",
                         "\\", ",", "\n", "\x00", "\u2028", "null", "1", "{", "}", "and", "/"]),
        max_size=40,
    )
)  # fmt: skip
def test_structured_noise_gives_a_valid_record(pieces: list[str]) -> None:
    text = "".join(pieces)
    record = _record({"strategy": "generated", "text": text})
    parsed = parse_labels(text, NAMES)
    assert record["n_invalid"] == len(parsed.invalid)
    assert _predicted(record) == list(parsed.labels)


# --- very long outputs: linear time ----------------------------------------------------------

LONG_PATTERNS: dict[str, Callable[[int], str]] = {
    "escaped-json": lambda n: "[" + '\\"joy\\", ' * (n // 9),
    "backslashes-then-quote": lambda n: "[" + "\\" * n + '"',
    "quotes-only": lambda n: "[" + '"' * n,
    "apostrophes": lambda n: "[" + " 'a" * (n // 3),
    "and-slashes": lambda n: "joy and anger/" * (n // 14),
    "control-chars": lambda n: "\x00\x07" * (n // 2),
    "unicode-breaks": lambda n: "joy\u2028" * (n // 4),
    "nested-open": lambda n: '[["joy", ' * (n // 9),
}


def _best_seconds(run: Callable[[], object], repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("make", LONG_PATTERNS.values(), ids=LONG_PATTERNS.keys())
def test_long_outputs_are_bounded_and_fast(make: Callable[[int], str]) -> None:
    long = make(100_000)
    assert len(long) >= 90_000
    record = _record({"strategy": "generated", "text": long})
    assert record["n_items"] <= 4 * len(NAMES) + 16 + 1  # inspection cap + TRUNCATED_ITEM
    # A guard against catastrophic backtracking (quadratic on 100k chars takes minutes), not a
    # speed claim: linear parsing takes milliseconds.
    assert _best_seconds(lambda: parse_labels(long, NAMES)) < 1.0


def test_runaway_answer_counts_as_one_extra_invalid_item() -> None:
    record = _record({"strategy": "generated", "text": ", ".join(f"x{i}" for i in range(20_000))})
    cap = 4 * len(NAMES) + 16
    assert (record["n_items"], record["n_invalid"]) == (cap + 1, cap + 1)
    assert parse_labels("joy, " + "kiwi" * 50_000, NAMES).invalid[-1] != TRUNCATED_ITEM


# --- probability views --------------------------------------------------------------------------

HOSTILE = [math.nan, math.inf, -math.inf, -0.5, 1.5, 1e300, -0.0, 0.5, 1.0, None]


@pytest.mark.parametrize("threshold", [0.5, 0.0, 1.0])
def test_hostile_probabilities_are_clipped_to_finite_values(threshold: float) -> None:
    probs = HOSTILE[: len(NAMES)]
    view = {"strategy": "max_over_steps", "text": "joy", "probs": probs, "threshold": threshold}
    record = _record(view)
    # NaN and None read as 0, +inf as 1, -inf and negatives as 0, above 1 as 1.
    assert record["probs"] == [0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert record["y_pred"] == [int(p >= threshold) for p in record["probs"]]


@settings(max_examples=200, deadline=None)
@given(
    probs=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=7, max_size=7),
    threshold=st.floats(0, 1),
)
def test_any_float_probabilities_give_a_valid_record(probs: list[float], threshold: float) -> None:
    record = _record({"strategy": "joint", "text": "", "probs": probs, "threshold": threshold})
    assert record["y_pred"] == [int(p >= threshold) for p in record["probs"]]


def _payload(probs: Sequence[Any], text: str) -> str:
    """An hf-mlc payload as a stale cache or a buggy backend could hold it (NaN as JSON `NaN`)."""
    body = {
        "format": FORMAT, "version": VERSION, "text": text, "labels": NAMES, "steps": [],
        "strategies": {"first_step": list(probs)}, "marginal_unexplored": 0.0,
        "options": {"threshold": 0.5}, "nonfinite_steps": 1,
    }  # fmt: skip
    return json.dumps(body, allow_nan=True)


def test_payload_with_nonfinite_probabilities_through_the_filter() -> None:
    response = _payload([math.nan, math.inf, -1.0, 2.0, 0.7, 0.2, -math.inf], '["joy", "kiwi"')
    view = strategy_view(response, "first_step")
    assert view is not None
    record = _record(view)
    assert record["probs"] == [0.0, 1.0, 0.0, 1.0, 0.7, 0.2, 0.0]
    assert record["y_pred"] == [0, 1, 0, 1, 1, 0, 0]
    assert (record["n_items"], record["n_invalid"]) == (2, 1)  # the text is still parsed
    generated = harness.process_results(DOC, [strategy_view(response, "generated")])
    assert generated["nonfinite_steps"] == 1 and _predicted(generated["micro_f1"]) == ["joy"]


def test_unary_loglikelihoods_from_a_broken_checkpoint_are_counted_not_nan() -> None:
    """NaN or infinite (yes, no) log-likelihoods: P(yes) finite (0 where undefined), counted."""
    from lm_eval_mlc.harness import unary

    doc = {"labels": ["joy", "fear"], "label_names": ["joy", "fear", "anger"], "id": "d"}
    lls = [math.nan, -1.0, -math.inf, -math.inf, -math.inf, -0.5]  # NaN, undefined, a clear no
    out = unary.process_results(doc, [(ll, False) for ll in lls])
    assert out["micro_f1"]["probs"] == [0.0, 0.0, 0.0]
    assert out["nonfinite_pairs"] == 3
    assert harness.total([out["nonfinite_pairs"]] * 2) == 6
    records = [out["micro_f1"]] * 4
    for metric in ("ece", "brier", "micro_f1", "roc_auc_micro"):
        value = getattr(harness, metric)(records)
        assert math.isfinite(value), metric
