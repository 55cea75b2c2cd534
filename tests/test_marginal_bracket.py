"""The tree marginal's bracket `probs <= true <= probs + unexplored`, on a synthetic process.

The "model" is a function from a token path to a next-token log-prob vector (seeded random
softmax over the handful of token strings in `TEXT`). It stops at EOS or after `depth` tokens
(its own generation budget, as `max_gen_toks` stops a real one), so every path finishes and the
true marginal is an exact, finite enumeration. The enumeration finds labels in the decoded text
with `LABEL_AT`, independently of `LabelDetector`: a label is its name preceded by the start of
the text or an opener character (`"[,' ` or newline) and followed by a terminator character
(`"],'` or newline) or the end of the text, the stopping token's text included (read literally,
"<eos>" ends no label, as in the detector). In this vocabulary a label's name is spelled only
by its own tokens (no token holds "S" but `S1` and `S2`) and no token text is empty, so this
text rule and the detector's token-sequence rule name the same labels on every finished path.
"""

import functools
import re
from collections.abc import Callable, Mapping

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_eval_mlc.scoring.marginal import LabelDetector, MarginalResult, Node, tree_marginal

TEXT = ["<eos>", '["', '"', '", "', '"]', "S1", "0", "S2", "x"]
EOS, OPEN, QUOTE, SEP, CLOSE, S1, ZERO, S2, FILLER = range(len(TEXT))
LABELS = ["S1", "S10", "S2"]
VARIANTS = [[[S1]], [[S1, ZERO]], [[S2]]]
LABEL_AT = [re.compile(rf"(?:^|(?<=[\"\[,' \n])){re.escape(n)}(?=[\"\],'\n]|$)") for n in LABELS]
TOL = 1e-9
PROPERTY = settings(max_examples=1500, deadline=None)

Process = Callable[[tuple[int, ...]], torch.Tensor]


@functools.cache
def _random_process(seed: int, path: tuple[int, ...]) -> torch.Tensor:
    """Next-token log-probs after `path`: a seeded random softmax, some tokens impossible."""
    rng = np.random.default_rng([seed, len(path), *path])
    logits = rng.normal(0.0, 2.0, len(TEXT))
    logits[rng.random(len(TEXT)) < 0.3] = -np.inf
    logits[EOS] = max(logits[EOS], -1.0) + 0.5  # EOS always possible, a little likelier
    if path and path[-1] == S1:
        logits[ZERO] = max(logits[ZERO], 0.0) + 1.5  # S1 often goes on to S10
    return torch.log_softmax(torch.from_numpy(logits), 0)


def _table_process(table: Mapping[tuple[int, ...], Mapping[int, float]]) -> Process:
    """A hand-written process: next-token probabilities by path, EOS where the table is silent."""

    def logprobs(path: tuple[int, ...]) -> torch.Tensor:
        p = torch.zeros(len(TEXT), dtype=torch.float64)
        for token, q in table.get(path, {EOS: 1.0}).items():
            p[token] = q
        return torch.log(p)

    return logprobs


def _stopped(path: tuple[int, ...], depth: int) -> bool:
    return path[-1] == EOS or len(path) >= depth


def _labels_in_text(path: tuple[int, ...]) -> list[int]:
    text = "".join(TEXT[t] for t in path)
    return [label for label, pattern in enumerate(LABEL_AT) if pattern.search(text)]


def _truth(process: Process, depth: int) -> np.ndarray:
    """P(label in the finished output) for every label, by enumerating every finished path."""
    truth, total = np.zeros(len(LABELS)), 0.0

    def walk(path: tuple[int, ...], p: float) -> None:
        nonlocal total
        if path and _stopped(path, depth):
            total += p
            truth[_labels_in_text(path)] += p
            return
        for token, q in enumerate(torch.exp(process(path)).tolist()):
            if q > 0:
                walk(path + (token,), p * q)

    walk((), 1.0)
    assert total == pytest.approx(1.0, abs=1e-12)
    return truth


@functools.cache
def _random_truth(seed: int, depth: int) -> np.ndarray:
    return _truth(functools.partial(_random_process, seed), depth)


def _search(process: Process, depth: int, **options: float) -> MarginalResult:
    def expand(frontier: list[Node]) -> list[torch.Tensor]:
        return [process(node.tokens) for node in frontier]

    return tree_marginal(
        process(()),
        expand,
        LabelDetector(VARIANTS, TEXT),
        len(LABELS),
        is_final=lambda path: _stopped(path, depth),
        **options,
    )


def _assert_bracket(result: MarginalResult, truth: np.ndarray) -> None:
    assert np.all(result.probs <= truth + TOL), (result, truth)
    assert np.all(truth <= result.probs + result.unexplored + TOL), (result, truth)


@PROPERTY
@given(
    seed=st.integers(0, 99),
    depth=st.integers(1, 4),
    top_p=st.just(1.0) | st.floats(0.0, 1.0, exclude_min=True),
    eps=st.just(0.0) | st.floats(0.0, 0.2),
    max_new_tokens=st.integers(0, 6),
)
def test_marginal_brackets_the_true_marginal_and_is_exact_unpruned(
    seed, depth, top_p, eps, max_new_tokens
):
    """Pruned or cut below the process's depth: a bracket; unpruned and deep enough: exact."""
    truth = _random_truth(seed, depth)
    result = _search(
        functools.partial(_random_process, seed),
        depth,
        top_p=top_p,
        eps=eps,
        max_new_tokens=max_new_tokens,
    )
    _assert_bracket(result, truth)
    if top_p == 1.0 and eps == 0.0 and max_new_tokens >= depth:
        np.testing.assert_allclose(result.probs, truth, rtol=0, atol=TOL)
        assert result.unexplored == pytest.approx(0.0, abs=TOL)


def test_the_random_processes_produce_every_label():
    """The property tests compare something: each label has mass at the deepest process."""
    truths = np.array([_random_truth(seed, 4) for seed in range(100)])
    assert np.all((truths > 0.01).mean(axis=0) > 0.5)


CUT_AFTER_S1 = {
    (): {OPEN: 1.0},
    (OPEN,): {S1: 1.0},
    (OPEN, S1): {ZERO: 0.7, QUOTE: 0.3},
    (OPEN, S1, ZERO): {QUOTE: 1.0},
}  # `["S1"` (0.3) or `["S10"` (0.7), then EOS


def test_the_old_finish_at_max_new_tokens_overcredits_s1():
    """Cut right after `S1` and taken as finished, the path credits S1 with its whole 1.0."""
    truth = _truth(_table_process(CUT_AFTER_S1), depth=5)
    np.testing.assert_allclose(truth, [0.3, 0.7, 0.0])
    assert LabelDetector(VARIANTS, TEXT).completed((OPEN, S1), final=True) == {0}
    assert truth[0] < 1.0  # so that credit would break the lower bound


@pytest.mark.parametrize(
    ("max_new_tokens", "probs", "unexplored"),
    [
        pytest.param(2, [0.0, 0.0, 0.0], 1.0, id="cut-after-S1"),
        pytest.param(3, [0.3, 0.0, 0.0], 1.0, id="S1-ended-both-unfinished"),
        pytest.param(4, [0.3, 0.7, 0.0], 0.7, id="S10-ended-unfinished"),
        pytest.param(5, [0.3, 0.7, 0.0], 0.0, id="every-path-stopped"),
    ],
)
def test_a_path_cut_unfinished_credits_only_ended_labels(max_new_tokens, probs, unexplored):
    """An unfinished path adds its whole probability to `unexplored`, even with S1 credited."""
    process = _table_process(CUT_AFTER_S1)
    result = _search(process, 5, top_p=1.0, eps=0.0, max_new_tokens=max_new_tokens)
    _assert_bracket(result, _truth(process, depth=5))
    np.testing.assert_allclose(result.probs, probs, rtol=0, atol=TOL)
    assert result.unexplored == pytest.approx(unexplored, abs=TOL)
