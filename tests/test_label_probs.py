"""Exact label probabilities and the tree marginal, against brute force on tiny random models."""

import itertools
import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lm_eval_mlc.label_trie import LabelTrie
from lm_eval_mlc.models.label_scoring import LabelStep, score_label_steps, score_label_steps_rows
from lm_eval_mlc.models.marginal import LabelDetector, cached_expander, tree_marginal
from lm_eval_mlc.step_distributions import (
    entropy_bits,
    first_token_renormalised,
    step_records,
    step_strategies,
)

# A vocabulary small enough to enumerate every continuation.
TEXT = ["<eos>", '["', '"', '", "', '"]', "S1", "0", "x"]
EOS, S1, ZERO = 0, 5, 6
V = len(TEXT)


def _tiny_model(vocab: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(config).eval()


def _logprobs(model, tokens):
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([tokens])).logits[0].double(), -1)


def test_trie_shares_prefixes_and_keeps_prefix_labels_apart():
    trie = LabelTrie.build([[9], [9, 10], [9, 10, 11], [10, 9], [9, 10]])
    assert len(trie) == 5  # 9, 10 | 9-10, 10-9 | 9-10-11 ; the duplicate adds nothing
    assert trie.ends[1] == trie.ends[4]
    assert [trie.tokens[n] for n in trie.path(trie.ends[2])] == [9, 10, 11]
    assert trie.firsts == (9, 9, 9, 10, 9)
    with pytest.raises(ValueError, match="at least one token"):
        LabelTrie.build([[1], []])


def test_exact_label_probabilities_equal_enumerating_sequences():
    vocab = 12
    model = _tiny_model(vocab, seed=0)
    prefix = [3, 4, 5, 6, 7, 8]
    terminators = torch.zeros(vocab, dtype=torch.bool)
    terminators[[1, 2]] = True
    # Prefix-of-another labels and a shared first token: 9 / 9-10 / 9-10-11 / 10-9.
    labels = [[9], [9, 10], [9, 10, 11], [10, 9]]
    with torch.no_grad():
        out = model(torch.tensor([prefix]), use_cache=True)
    lp = torch.log_softmax(out.logits[0], -1)
    boundaries = (3, 5)
    steps = [LabelStep(b, b, lp[b - 1], labels, terminators) for b in boundaries]
    with torch.no_grad():
        complete, first = score_label_steps(model, out.past_key_values, 0, steps)

    for k, b in enumerate(boundaries):
        for j, label in enumerate(labels):
            # Brute force: every sequence (label tokens, then any terminator), fully recomputed.
            total = 0.0
            for seq in itertools.product(range(vocab), repeat=len(label) + 1):
                if list(seq[:-1]) == label and seq[-1] in (1, 2):
                    full = _logprobs(model, prefix[:b] + list(seq))
                    total += math.exp(sum(full[b - 1 + i, t].item() for i, t in enumerate(seq)))
            assert complete[k, j] == pytest.approx(math.log(total), abs=1e-5)
            assert first[k, j] == pytest.approx(lp[b - 1, label[0]].item(), abs=1e-6)


@pytest.mark.parametrize("max_nodes", [512, 1])  # one joined forward; one forward per doc
def test_joined_batch_scoring_equals_each_doc_alone(max_nodes):
    """A left-padded batch's docs scored in one forward over their joined caches give what
    each doc gives alone, unpadded; a doc without steps gets empty arrays."""
    vocab = 12
    model = _tiny_model(vocab, seed=2)
    prefixes = [[3, 4, 5, 6, 7, 8, 3], [4, 4], [5, 3, 8, 6]]
    terminators = torch.zeros(vocab, dtype=torch.bool)
    terminators[[1, 2]] = True
    labels = [[9], [9, 10], [10, 9, 11]]
    steps_at = [(2, 6), (), (4,)]  # label steps after this many tokens of each prefix
    width = max(map(len, prefixes))
    pads = [width - len(p) for p in prefixes]
    ids = torch.tensor([[0] * pad + p for pad, p in zip(pads, prefixes, strict=True)])
    mask = (torch.arange(width)[None] >= torch.tensor(pads)[:, None]).long()
    with torch.no_grad():
        out = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
    lp = torch.log_softmax(out.logits, -1)

    def step(row, b, pad, logprobs):
        return LabelStep(b + pad, b, logprobs[b + pad - 1], labels, terminators)

    rows = [[step(r, b, pads[r], lp[r]) for b in steps_at[r]] for r in range(3)]
    with torch.no_grad():
        joined = score_label_steps_rows(model, out.past_key_values, pads, rows, max_nodes)
        for r, prefix in enumerate(prefixes):
            alone_out = model(torch.tensor([prefix]), use_cache=True)
            alone_lp = torch.log_softmax(alone_out.logits[0], -1)
            alone = [step(r, b, 0, alone_lp) for b in steps_at[r]]
            complete, first = score_label_steps(model, alone_out.past_key_values, 0, alone)
            shape = (len(steps_at[r]), len(labels)) if steps_at[r] else (0, 0)
            assert joined[r][0].shape == complete.shape == shape
            np.testing.assert_allclose(joined[r][0], complete, atol=1e-5)
            np.testing.assert_allclose(joined[r][1], first, atol=1e-5)


def _brute_force_marginal(model, prompt, detector, n_labels, max_new_tokens):
    probs, total = np.zeros(n_labels), 0.0

    def walk(path):
        nonlocal total
        if path and (path[-1] == EOS or len(path) == max_new_tokens):
            lp = _logprobs(model, prompt + list(path))
            p = math.exp(sum(lp[len(prompt) - 1 + i, t].item() for i, t in enumerate(path)))
            total += p
            for label in detector.labels_in(path):
                probs[label] += p
            return
        for token in range(V):
            walk(path + (token,))

    walk(())
    return probs, total


def _search(model, prompt, detector, *, top_p, eps, max_new_tokens, batch_size):
    with torch.no_grad():
        out = model(torch.tensor([prompt]), use_cache=True)
        root = torch.log_softmax(out.logits[0, -1], -1)
        expand = cached_expander(
            model, out.past_key_values, torch.ones(len(prompt), dtype=torch.bool), len(prompt),
            batch_size,
        )  # fmt: skip
        return tree_marginal(
            root,
            expand,
            detector,
            2,
            is_final=lambda path: path[-1] == EOS,
            top_p=top_p,
            eps=eps,
            max_new_tokens=max_new_tokens,
        )


@pytest.fixture(scope="module")
def marginal_setup():
    model = _tiny_model(V, seed=1)
    detector = LabelDetector([[[S1]], [[S1, ZERO]]], TEXT)  # labels "S1" and "S10"
    prompt = [7, 1, 7, 6]
    brute, total = _brute_force_marginal(model, prompt, detector, 2, max_new_tokens=4)
    assert total == pytest.approx(1.0, abs=1e-5)  # enumeration covers every continuation
    return model, detector, prompt, brute


def test_tree_marginal_equals_brute_force_without_pruning(marginal_setup):
    model, detector, prompt, brute = marginal_setup
    result = _search(model, prompt, detector, top_p=1.0, eps=0.0, max_new_tokens=4, batch_size=5)
    np.testing.assert_allclose(result.probs, brute, atol=1e-6)
    assert result.unexplored == pytest.approx(0.0, abs=1e-6)
    assert brute.min() > 0  # both labels do occur, so the comparison means something


def test_tree_marginal_is_the_same_for_every_frontier_batch_size(marginal_setup):
    model, detector, prompt, _ = marginal_setup
    runs = [
        _search(model, prompt, detector, top_p=1.0, eps=0.0, max_new_tokens=4, batch_size=b)
        for b in (1, 3, 64)
    ]
    for run in runs[1:]:
        np.testing.assert_allclose(run.probs, runs[0].probs, atol=1e-6)


def test_pruned_marginal_brackets_the_true_value(marginal_setup):
    model, detector, prompt, brute = marginal_setup
    result = _search(model, prompt, detector, top_p=0.9, eps=0.02, max_new_tokens=4, batch_size=8)
    assert result.unexplored > 0.01  # pruning did cut something
    assert np.all(result.probs <= brute + 1e-9)
    assert np.all(brute <= result.probs + result.unexplored + 1e-9)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param([1, S1, 4], {0}, id="S1-closed"),
        pytest.param([1, S1, ZERO, 4], {1}, id="S10-not-S1"),
        pytest.param([1, S1, ZERO], {1}, id="S10-at-end"),
        pytest.param([1, S1, 7, 4], set(), id="S1x-is-no-label"),
        pytest.param([7, S1, 4], set(), id="not-after-an-opener"),
        pytest.param([1, S1, 3, S1, ZERO, 4], {0, 1}, id="both"),
    ],
)
def test_label_detector_matches_whole_labels_only(path, expected):
    detector = LabelDetector([[[S1]], [[S1, ZERO]]], TEXT)
    assert detector.labels_in(path) == expected


def test_step_strategies_and_records_on_a_hand_example():
    names = ["joy", "anger", "fear"]
    # Step 0 generated joy, step 1 generated anger.
    probs = np.array([[0.6, 0.3, 0.05], [0.01, 0.7, 0.2]])
    complete = np.log(probs)
    path = [math.log(0.9), math.log(0.5)]  # P(path before each step)
    out = step_strategies(complete, [0, 1], path, 3)
    np.testing.assert_allclose(out["first_step"], [0.6, 0.3, 0.05])
    np.testing.assert_allclose(out["max_over_steps"], [0.6, 0.7, 0.2])
    np.testing.assert_allclose(out["conditional"], [0.6, 0.7, 0.0])
    np.testing.assert_allclose(out["joint"], [0.9 * 0.6, 0.5 * 0.7, 0.0])
    assert step_strategies(np.zeros((0, 3)), [], [], 3)["max_over_steps"] == [0.0, 0.0, 0.0]

    records = step_records(complete, complete, complete, [0, 1], [1, 4], [11, 12, 13], names)
    assert records[0]["none"] == pytest.approx(0.05)
    assert records[0]["runner_up"] == "anger" and records[0]["runner_up_later"] is True
    assert records[1]["runner_up"] == "fear" and records[1]["runner_up_later"] is False
    assert records[0]["top1_top2_ratio"] == pytest.approx(2.0)
    assert records[0]["entropy_bits"] == pytest.approx(entropy_bits([0.6, 0.3, 0.05, 0.05]))


def test_entropy_and_first_token_renormalisation():
    assert entropy_bits([0.5, 0.5]) == pytest.approx(1.0)
    assert entropy_bits([1.0, 0.0]) == 0.0
    assert entropy_bits([0.25] * 4) == pytest.approx(2.0)
    # Two labels share first token 7: they get the same value; distinct tokens renormalise.
    lp = np.log([0.2, 0.2, 0.1])
    np.testing.assert_allclose(first_token_renormalised(lp, [7, 7, 8]), [2 / 3, 2 / 3, 1 / 3])
