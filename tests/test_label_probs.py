"""Exact label probabilities and the tree marginal, against brute force on tiny random models."""

import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lm_eval_mlc.core.strategies import (
    entropy_bits,
    first_token_renormalised,
    step_records,
    step_strategies,
)
from lm_eval_mlc.core.trie import LabelTrie
from lm_eval_mlc.scoring.label_scoring import LabelStep, score_label_steps, score_label_steps_rows
from lm_eval_mlc.scoring.marginal import LabelDetector, cached_expander, tree_marginal

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


def _step(boundary, position, logits, sequences, owners, terminators, *, closed=None, depths=None):
    n_labels = max(owners) + 1
    return LabelStep(
        boundary=boundary,
        position=position,
        prefix_logprobs=torch.log_softmax(logits, -1),
        prefix_logits=logits,
        sequences=sequences,
        owners=owners,
        closed=closed or [False] * len(sequences),
        first_depths=depths or [1] * len(sequences),
        canonical=[owners.index(label) for label in range(n_labels)],
        terminators=terminators,
    )


# Label 0: [9] or [10, 9] (two spellings, summed); label 1: [9, 10] (a prefix of label 2);
# label 2: [9, 10, 11]; label 3: [10, 9, 11] written as one closed sequence (its last token
# already ends the item, so no ending token follows).
SEQUENCES = [[9], [10, 9], [9, 10], [9, 10, 11], [10, 9, 11]]
OWNERS = [0, 0, 1, 2, 3]
CLOSED = [False, False, False, False, True]


def _brute_force_label(model, prefix, b, label, terminators=(1, 2)):
    """P(label) at boundary b by enumerating every sequence, each fully recomputed."""
    total = 0.0
    for seq, owner, closed in zip(SEQUENCES, OWNERS, CLOSED, strict=True):
        if owner != label:
            continue
        endings = [()] if closed else [(t,) for t in terminators]
        for ending in endings:
            tokens = list(seq) + list(ending)
            full = _logprobs(model, prefix[:b] + tokens)
            total += math.exp(sum(full[b - 1 + i, t].item() for i, t in enumerate(tokens)))
    return total


@pytest.mark.parametrize("budget_nodes", [None, 2])  # one model call; two trie nodes per call
def test_exact_label_probabilities_equal_enumerating_sequences(monkeypatch, budget_nodes):
    from lm_eval_mlc.scoring import label_scoring

    vocab = 12
    if budget_nodes:
        monkeypatch.setattr(label_scoring, "LOGIT_BUDGET", budget_nodes * vocab)
    model = _tiny_model(vocab, seed=0)
    prefix = [3, 4, 5, 6, 7, 8]
    terminators = torch.zeros(vocab, dtype=torch.bool)
    terminators[[1, 2]] = True
    with torch.no_grad():
        out = model(torch.tensor([prefix]), use_cache=True)
    logits = out.logits[0]
    boundaries = (3, 5)
    steps = [
        _step(b, b, logits[b - 1], SEQUENCES, OWNERS, terminators, closed=CLOSED,
              depths=[1, 2, 1, 1, 2])
        for b in boundaries
    ]  # fmt: skip
    with torch.no_grad():
        scores = score_label_steps(model, out.past_key_values, 0, steps)

    lp = torch.log_softmax(logits, -1)
    for k, b in enumerate(boundaries):
        for label in range(4):
            expected = _brute_force_label(model, prefix, b, label)
            assert scores[k].complete[label] == pytest.approx(math.log(expected), abs=1e-5)
        # First label tokens: depth 1 for labels 0-2 (their canonical spellings start with a
        # label token), depth 2 for label 3 (its first token is a lead): P(10) * P(9 | 10).
        assert scores[k].first_logp[0] == pytest.approx(lp[b - 1, 9].item(), abs=1e-5)
        assert scores[k].first_logit[1] == pytest.approx(logits[b - 1, 9].item(), abs=1e-5)
        after_lead = _logprobs(model, prefix[:b] + [10])[-1]
        assert scores[k].first_logp[3] == pytest.approx(
            lp[b - 1, 10].item() + after_lead[9].item(), abs=1e-5
        )
        # Labels 0, 1 and 2 share their first label token (the same trie node).
        assert len(set(scores[k].first_node[:3])) == 1 and scores[k].first_node[3] >= 0


def test_joined_batch_scoring_equals_each_doc_alone():
    """A left-padded batch's docs scored together over their joined caches give what each doc
    gives alone, unpadded; a doc without steps gets no scores."""
    vocab = 12
    model = _tiny_model(vocab, seed=2)
    prefixes = [[3, 4, 5, 6, 7, 8, 3], [4, 4], [5, 3, 8, 6]]
    terminators = torch.zeros(vocab, dtype=torch.bool)
    terminators[[1, 2]] = True
    steps_at = [(2, 6), (), (4,)]  # label steps after this many tokens of each prefix
    width = max(map(len, prefixes))
    pads = [width - len(p) for p in prefixes]
    ids = torch.tensor([[0] * pad + p for pad, p in zip(pads, prefixes, strict=True)])
    mask = (torch.arange(width)[None] >= torch.tensor(pads)[:, None]).long()
    with torch.no_grad():
        out = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))

    def step(b, pad, logits):
        return _step(b + pad, b, logits[b + pad - 1], SEQUENCES, OWNERS, terminators,
                     closed=CLOSED)  # fmt: skip

    rows = [[step(b, pads[r], out.logits[r]) for b in steps_at[r]] for r in range(3)]
    with torch.no_grad():
        joined = score_label_steps_rows(model, out.past_key_values, pads, rows)
        for r, prefix in enumerate(prefixes):
            alone_out = model(torch.tensor([prefix]), use_cache=True)
            alone = [step(b, 0, alone_out.logits[0]) for b in steps_at[r]]
            expected = score_label_steps(model, alone_out.past_key_values, 0, alone)
            assert len(joined[r]) == len(expected) == len(steps_at[r])
            for got, want in zip(joined[r], expected, strict=True):
                np.testing.assert_allclose(got.complete, want.complete, atol=1e-5)
                np.testing.assert_allclose(got.first_logp, want.first_logp, atol=1e-5)
                np.testing.assert_allclose(got.sequence_logp, want.sequence_logp, atol=1e-5)


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
            is_final=lambda path: path[-1] == EOS or len(path) >= 4,  # the process ends at 4
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


def test_tree_marginal_reuses_the_greedy_generation(marginal_setup):
    """Nodes on the generated path take their KV and logits from the generation (as hf-mlc
    passes them): same numbers as brute force, and none of those nodes is fed again."""
    from transformers import DynamicCache

    model, detector, prompt, brute = marginal_setup
    cache, fed = DynamicCache(), []
    with torch.no_grad():
        logits = [model(torch.tensor([prompt]), past_key_values=cache).logits[0, -1]]
        for _ in range(2):  # two tokens decoded and fed, as generate() leaves its cache
            fed.append(int(logits[-1][1:].argmax()) + 1)  # the likeliest token but EOS
            logits.append(model(torch.tensor([[fed[-1]]]), past_key_values=cache).logits[0, -1])
    known = {tuple(fed[:k]): (len(prompt) + k - 1, logits[k]) for k in (1, 2)}
    allowed = torch.zeros(len(prompt) + 2, dtype=torch.bool)
    allowed[: len(prompt)] = True
    tokens_fed = []
    hook = model.register_forward_pre_hook(
        lambda m, a, k: tokens_fed.append(int(k["input_ids"].numel())), with_kwargs=True
    )
    try:
        with torch.no_grad():
            positions = torch.arange(len(prompt) + 2)
            expand = cached_expander(model, cache, allowed, len(prompt), 5,
                                     prompt_positions=positions, known=known)  # fmt: skip
            result = tree_marginal(
                torch.log_softmax(logits[0], -1), expand, detector, 2,
                is_final=lambda path: path[-1] == EOS or len(path) >= 4,
                top_p=1.0, eps=0.0, max_new_tokens=4,
            )  # fmt: skip
    finally:
        hook.remove()
    np.testing.assert_allclose(result.probs, brute, atol=1e-6)
    assert result.unexplored == pytest.approx(0.0, abs=1e-6)
    assert sum(tokens_fed) == result.n_expanded - len(known)


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

    keys = np.array([[11, 12, 13], [11, 12, 13]])
    records = step_records(complete, complete, complete, keys, [0, 1], [1, 4], names, [True, None])
    assert records[0]["none"] == pytest.approx(0.05)
    assert records[0]["runner_up"] == "anger" and records[0]["runner_up_later"] is True
    assert records[1]["runner_up"] == "fear" and records[1]["runner_up_later"] is False
    assert records[0]["top1_top2_ratio"] == pytest.approx(2.0)
    assert records[0]["entropy_bits"] == pytest.approx(entropy_bits([0.6, 0.3, 0.05, 0.05]))
    assert records[0]["generated_tokens_match"] is True
    assert records[1]["generated_tokens_match"] is None


def test_first_token_fields_are_null_where_no_label_token_exists():
    """A label without a first label token reports null, never a made-up constant."""
    names = ["joy", "anger"]
    lp = np.log([[0.5, 0.2]])
    keys = np.array([[7, -1]])
    logits = np.array([[3.0, np.nan]])
    (record,) = step_records(lp, lp, logits, keys, [0], [0], names)
    assert record["first_token_probs"] == [1.0, None]
    assert record["first_token_logits"] == [3.0, None]
    (record,) = step_records(lp, lp, logits, np.array([[-1, -1]]), [-1], [0], names)
    assert record["first_token_probs"] is None and record["first_token_logits"] is None


def test_entropy_and_first_token_renormalisation():
    assert entropy_bits([0.5, 0.5]) == pytest.approx(1.0)
    assert entropy_bits([1.0, 0.0]) == 0.0
    assert entropy_bits([0.25] * 4) == pytest.approx(2.0)
    # Two labels share first token 7: they get the same value; distinct tokens renormalise.
    lp = np.log([0.2, 0.2, 0.1])
    np.testing.assert_allclose(first_token_renormalised(lp, [7, 7, 8]), [2 / 3, 2 / 3, 1 / 3])


def test_prune_spellings_drops_unlikely_first_tokens_and_bounds_them():
    """Hand-worked: vocabulary of 6, first-token probabilities below; threshold 0.05."""
    from lm_eval_mlc.scoring.label_scoring import prune_spellings

    p = torch.tensor([0.5, 0.3, 0.1, 0.04, 0.03, 0.03]).log()
    sequences = [(0,), (3, 1), (3, 2), (4,), (1, 5), (5, 0)]
    owners = [0, 0, 0, 1, 1, 1]
    protected = [True, False, False, False, True, False]
    # label 1's canonical (1, 5) is kept; (4,) and (5, 0) start below 0.05 and are dropped;
    # label 0's variants (3, 1) and (3, 2) share the dropped first token 3: bounded once.
    keep, bound = prune_spellings(sequences, owners, protected, p, 0.05, 2)
    assert keep == [0, 4]
    np.testing.assert_allclose(bound, [0.04, 0.03 + 0.03])
    # A dropped token that a protected sequence starts with is kept (no subtree is skipped).
    keep, bound = prune_spellings(sequences, owners, [True, True, False, False, True, False], p,
                                  0.05, 2)  # fmt: skip
    assert keep == [0, 1, 2, 4]
    np.testing.assert_allclose(bound, [0.0, 0.06])
    keep, bound = prune_spellings(sequences, owners, protected, p, 0.0, 2)
    assert keep == list(range(6)) and not bound.any()
