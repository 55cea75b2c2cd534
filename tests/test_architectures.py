"""Tree attention on every attention layout, against full uncached forwards of each branch.

Tiny random models built from config (Llama, Mistral and Phi-3 with a sliding window, Gemma-2,
Gemma-3 and Qwen2 mixing sliding and full layers), eager and sdpa: every trie node's
log-probs equal the uncached forward of prompt[:boundary] + its branch as its own sequence.
The window (6) is shorter than the prompt (14), and branches also attach at earlier
boundaries, so a wrong window or a glimpse of later cached positions shows.
"""

import logging
import math

import numpy as np
import pytest
import torch
from transformers import (
    DynamicCache,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    StaticCache,
)

from lm_eval_mlc.scoring import tree_attention
from lm_eval_mlc.scoring.marginal import LabelDetector, cached_expander, tree_marginal
from lm_eval_mlc.scoring.tree_attention import (
    attention_layer_types,
    attention_window,
    cache_argument,
    check_attention_implementation,
    tree_forward,
)

WINDOW = 6
VOCAB = 96
BASE = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=128,
    initializer_range=0.3,  # large enough that context moves the logits
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,  # tied, Gemma's scaled embeddings echo the last token
)
S, F = "sliding_attention", "full_attention"

# name: (model class, config, attention implementations, expected layer types)
FAMILIES = {
    "llama": (LlamaForCausalLM, lambda: LlamaConfig(**BASE), ("eager", "sdpa"), (F, F)),
    "mistral": (
        MistralForCausalLM,
        lambda: MistralConfig(sliding_window=WINDOW, **BASE),
        ("eager", "sdpa"),
        (S, S),
    ),
    "phi3": (
        Phi3ForCausalLM,
        lambda: Phi3Config(sliding_window=WINDOW, **BASE),
        ("eager", "sdpa"),
        (S, S),
    ),
    # Gemma-2 has no sdpa (softcapping, tight here so that it bites); its default layout
    # alternates sliding and full.
    "gemma2": (
        Gemma2ForCausalLM,
        lambda: Gemma2Config(
            sliding_window=WINDOW, attn_logit_softcapping=1.0, final_logit_softcapping=3.0, **BASE
        ),
        ("eager",),
        (S, F),
    ),
    "gemma3": (
        Gemma3ForCausalLM,
        lambda: Gemma3TextConfig(sliding_window=WINDOW, layer_types=[S, F], **BASE),
        ("eager", "sdpa"),
        (S, F),
    ),
    "qwen2": (
        Qwen2ForCausalLM,
        lambda: Qwen2Config(
            use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1, **BASE
        ),
        ("eager", "sdpa"),
        (F, S),
    ),
}  # fmt: skip
CASES = [
    pytest.param(name, impl, id=f"{name}-{impl}")
    for name, (_, _, impls, _) in FAMILIES.items()
    for impl in impls
]
SLIDING_CASES = [case for case in CASES if S in FAMILIES[case.values[0]][3]]

PROMPT = [5, 17, 33, 8, 61, 42, 9, 77, 23, 50, 14, 88, 31, 66]  # 14 tokens > WINDOW
OTHER = [12, 40, 71, 19, 55, 27, 83, 10, 36, 64]  # the shorter row of the padded batch
# Branches of one to three tokens sharing prefixes, attached at three boundaries.
BRANCHES = [[3], [3, 44], [3, 44, 7], [3, 90], [58], [58, 21, 70]]
BOUNDARIES = (len(PROMPT), 9, 4)

_models: dict[tuple[str, str], torch.nn.Module] = {}


def _model(name: str, impl: str) -> torch.nn.Module:
    if (name, impl) not in _models:
        cls, config, _, _ = FAMILIES[name]
        torch.manual_seed(0)
        _models[name, impl] = cls._from_config(config(), attn_implementation=impl).eval()
    return _models[name, impl]


def _cache(model, cache) -> dict:
    """The cache keyword: `cache` in transformers 5 (`past_key_values` warns there), before it
    `past_key_values`."""
    return {cache_argument(model): cache}


def _logprobs(model, tokens) -> torch.Tensor:
    """Brute force: the full uncached forward of `tokens` as its own sequence."""
    with torch.no_grad():
        logits = model(torch.tensor([list(tokens)]), use_cache=False).logits[0]
    return torch.log_softmax(logits.float(), -1)


def _prefill(model, rows: list[list[int]]) -> tuple[DynamicCache, list[int]]:
    """Left-padded batch into a config-less DynamicCache; position ids start at 0 after padding."""
    width = max(map(len, rows))
    pads = [width - len(r) for r in rows]
    ids = torch.tensor([[0] * p + r for p, r in zip(pads, rows, strict=True)])
    mask = (torch.arange(width)[None] >= torch.tensor(pads)[:, None]).long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    with torch.no_grad():
        model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **_cache(model, cache),
        )
    return cache, pads


def _row(cache: DynamicCache, r: int) -> DynamicCache:
    """Row r of a batch cache as a batch-size-1 cache (padding kept, masked by the caller)."""
    row = DynamicCache()
    for i, layer in enumerate(cache.layers):
        row.update(layer.keys[r : r + 1].clone(), layer.values[r : r + 1].clone(), i)
    return row


def _trie(boundaries, pad, cache_len, key_positions):
    """BRANCHES at every boundary: tokens, parents, positions, allowed, (boundary, path)."""
    tokens, parents, positions, allowed, keys = [], [], [], [], []
    for b in boundaries:
        node_of: dict[tuple[int, ...], int] = {}
        for branch in BRANCHES:
            for depth in range(1, len(branch) + 1):
                path = tuple(branch[:depth])
                if path in node_of:
                    continue
                node_of[path] = len(tokens)
                tokens.append(path[-1])
                parents.append(node_of[path[:-1]] if depth > 1 else -1)
                positions.append(b + depth - 1)
                row = torch.zeros(cache_len, dtype=torch.bool)
                row[pad : pad + b] = True
                allowed.append(row)
                keys.append((b, path))
    assert all(key_positions[pad + b - 1] == b - 1 for b in boundaries)  # positions line up
    return tokens, parents, positions, torch.stack(allowed), keys


def _check_tree(model, prompt, cache, pad, boundaries, atol=1e-4):
    cache_len = int(cache.get_seq_length())
    key_positions = (torch.arange(cache_len) - pad).clamp(min=0)
    tokens, parents, positions, allowed, keys = _trie(boundaries, pad, cache_len, key_positions)
    with torch.no_grad():
        logits, _ = tree_forward(model, cache, tokens, parents, positions, allowed, key_positions)
    got = torch.log_softmax(logits, -1)
    assert got.shape == (len(tokens), VOCAB)
    worst = 0.0
    for q, (b, path) in enumerate(keys):
        expected = _logprobs(model, list(prompt[:b]) + list(path))[-1]
        worst = max(worst, float((got[q] - expected).abs().max()))
    assert worst < atol, f"largest log-prob error {worst:.2e}"
    return got


@pytest.mark.parametrize("name", FAMILIES)
def test_layer_types_and_window_follow_the_model(name):
    model = _model(name, FAMILIES[name][2][0])
    expected = FAMILIES[name][3]
    assert attention_layer_types(model.config) == expected
    assert attention_window(model.config) == (WINDOW if S in expected else None)
    for layer, kind in zip(model.model.layers, expected, strict=True):
        if hasattr(layer.self_attn, "layer_type"):  # the model's own view (Gemma, Qwen2)
            assert layer.self_attn.sliding_window == (WINDOW if kind == S else None)


def test_mistral_ignores_layer_types_it_does_not_declare():
    config = MistralConfig(sliding_window=WINDOW, layer_types=[F, S], **BASE)
    assert attention_layer_types(config) == (S, S)  # MistralModel slides every layer


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_tree_equals_brute_force_after_one_prompt(name, impl):
    model = _model(name, impl)
    cache, _ = _prefill(model, [PROMPT])
    _check_tree(model, PROMPT, cache, 0, BOUNDARIES)


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_tree_equals_brute_force_on_rows_of_a_left_padded_batch(name, impl):
    model = _model(name, impl)
    cache, pads = _prefill(model, [OTHER, PROMPT])
    assert pads == [len(PROMPT) - len(OTHER), 0]
    _check_tree(model, OTHER, _row(cache, 0), pads[0], (len(OTHER), 7, 3))
    _check_tree(model, PROMPT, _row(cache, 1), pads[1], BOUNDARIES)


MIXED_CASES = [case for case in SLIDING_CASES if F in FAMILIES[case.values[0]][3]]


@pytest.mark.parametrize(("name", "impl"), SLIDING_CASES)
def test_ignoring_the_window_would_be_caught(name, impl, monkeypatch):
    """The comparison can fail: without the window the sliding layers see too much."""
    model = _model(name, impl)
    cache, _ = _prefill(model, [PROMPT])
    monkeypatch.setattr(tree_attention, "attention_window", lambda config: 10**6)
    with pytest.raises(AssertionError, match="largest log-prob error"):
        _check_tree(model, PROMPT, cache, 0, BOUNDARIES, atol=1e-2)


@pytest.mark.parametrize(("name", "impl"), MIXED_CASES)
def test_one_sliding_mask_for_every_layer_would_be_caught(name, impl, monkeypatch):
    """Mixed models need the mask per layer type: full layers must see past the window."""
    model = _model(name, impl)
    cache, _ = _prefill(model, [PROMPT])
    monkeypatch.setattr(tree_attention, "attention_layer_types", lambda config: (S, S))
    with pytest.raises(AssertionError, match="largest log-prob error"):
        _check_tree(model, PROMPT, cache, 0, BOUNDARIES, atol=1e-2)


def test_a_node_seeing_a_later_position_is_refused():
    model = _model("llama", "sdpa")
    cache, _ = _prefill(model, [PROMPT])
    allowed = torch.ones(1, len(PROMPT), dtype=torch.bool)  # node at position 4 sees all 14
    with pytest.raises(ValueError, match="at or before"):
        tree_forward(model, cache, [3], [-1], [4], allowed, torch.arange(len(PROMPT)))


def _generate(model, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model.generate(
            torch.tensor([PROMPT]), max_new_tokens=10, min_new_tokens=10, do_sample=False, **kwargs
        )


@pytest.mark.parametrize(
    ("name", "impl"), [c for c in CASES if c.values[1] == FAMILIES[c.values[0]][2][-1]]
)
def test_generate_into_a_private_dynamic_cache_keeps_every_position(name, impl):
    model = _model(name, impl)
    cache = DynamicCache()
    ours = _generate(model, **_cache(model, cache))
    assert torch.equal(ours, _generate(model))  # the same greedy tokens as the default cache
    length = ours.shape[1] - 1  # the last token is never fed
    assert not any(cache.is_sliding)
    assert [layer.keys.shape[-2] for layer in cache.layers] == [length] * 2
    # The generation cache scores like any other: branches after the generated text.
    _check_tree(model, ours[0].tolist(), cache, 0, (length, 9))


@pytest.mark.parametrize("default", ["static", "hybrid"])
def test_static_and_hybrid_defaults_yield_to_the_private_cache(default):
    """A Hub `cache_implementation` (Gemma-2 ships "hybrid", some "static") conflicts with a
    user cache; "static" must be unset by the caller, "hybrid" transformers unsets itself."""
    model = _model("gemma3", "sdpa")
    plain = _generate(model)
    model.generation_config.cache_implementation = default
    try:
        if default == "static":
            with pytest.raises(ValueError, match="cache_implementation"):
                _generate(model, **_cache(model, DynamicCache()))
        cache = DynamicCache()
        ours = _generate(model, cache_implementation=None, **_cache(model, cache))
        assert torch.equal(ours, plain)
        assert torch.equal(_generate(model), plain)  # the configured cache, same tokens
    finally:
        model.generation_config.cache_implementation = None
    length = ours.shape[1] - 1
    _check_tree(model, ours[0].tolist(), cache, 0, (length, 11, 5))


def test_caches_that_drop_or_preallocate_positions_are_refused():
    model = _model("mistral", "sdpa")
    ids = torch.tensor([PROMPT])
    sliding = DynamicCache(config=model.config)  # keeps only the last WINDOW - 1 or so
    static = StaticCache(config=model.config, max_cache_len=32)
    for cache in (sliding, static):
        with torch.no_grad():
            model(ids, use_cache=True, **_cache(model, cache))
        allowed = torch.ones(1, len(PROMPT), dtype=torch.bool)
        with pytest.raises(ValueError, match="DynamicCache"):
            tree_forward(model, cache, [3], [-1], [len(PROMPT)], allowed, torch.arange(len(PROMPT)))


@pytest.mark.parametrize("name", ["llama", "gemma2"])
def test_flash_attention_is_switched_to_a_masked_implementation(name, caplog):
    torch.manual_seed(0)
    cls, config, _, _ = FAMILIES[name]
    switched_to = "sdpa" if cls._supports_sdpa else "eager"  # Gemma-2 lost sdpa in transformers 5
    model = cls._from_config(config(), attn_implementation="eager").eval()
    model.config._attn_implementation_internal = "flash_attention_2"  # as if loaded with it
    with pytest.raises(ValueError, match="check_attention_implementation"):
        _check_tree(model, PROMPT, _prefill(_model(name, "eager"), [PROMPT])[0], 0, BOUNDARIES)
    with caplog.at_level(logging.WARNING, logger=tree_attention.__name__):
        check_attention_implementation(model)
        check_attention_implementation(model)  # already switched: silent
    assert model.config._attn_implementation == switched_to
    warnings = [r for r in caplog.records if r.name == tree_attention.__name__]
    assert len(warnings) == 1 and "flash_attention_2" in warnings[0].getMessage()
    cache, _ = _prefill(model, [PROMPT])
    _check_tree(model, PROMPT, cache, 0, BOUNDARIES)


def test_an_implementation_that_cannot_be_switched_is_refused(monkeypatch):
    torch.manual_seed(0)
    model = LlamaForCausalLM._from_config(LlamaConfig(**BASE), attn_implementation="eager")
    model.config._attn_implementation_internal = "flash_attention_3"
    # Models that cannot switch only log it (transformers), so the check reads the result.
    monkeypatch.setattr(model, "set_attn_implementation", lambda impl: None)
    with pytest.raises(ValueError, match=r"'flash_attention_3'.*attn_implementation='sdpa'"):
        check_attention_implementation(model)

    class Bare(torch.nn.Module):  # no set_attn_implementation at all
        config = model.config

    with pytest.raises(ValueError, match="flash_attention_3"):
        check_attention_implementation(Bare())


# The marginal search on the sliding-window Mistral, against enumerating every continuation.
TEXT = ["<eos>", '["', '"', '", "', '"]', "S1", "0", "x"]
EOS, S1, ZERO = 0, 5, 6
MARGINAL_PROMPT = [1, 7, 6, 7, 1, 5, 7, 6, 1]  # 9 tokens, window 4: the search passes it


def _marginal_model() -> MistralForCausalLM:
    torch.manual_seed(3)
    config = MistralConfig(**{**BASE, "vocab_size": len(TEXT), "sliding_window": 4})
    return MistralForCausalLM._from_config(config, attn_implementation="sdpa").eval()


def _brute_force_marginal(model, prompt, detector, n_labels, max_new_tokens):
    """Every continuation, each prefix's next-token distribution from its uncached forward."""
    probs, total = np.zeros(n_labels), 0.0

    def walk(path, p):
        nonlocal total
        if path and (path[-1] == EOS or len(path) == max_new_tokens):
            total += p
            for label in detector.labels_in(path):
                probs[label] += p
            return
        lp = _logprobs(model, prompt + list(path))[-1].double()
        for token in range(len(TEXT)):
            walk(path + (token,), p * math.exp(lp[token].item()))

    walk((), 1.0)
    return probs, total


@pytest.fixture(scope="module")
def marginal_setup():
    model = _marginal_model()
    detector = LabelDetector([[[S1]], [[S1, ZERO]]], TEXT)  # labels "S1" and "S10"
    brute, total = _brute_force_marginal(model, MARGINAL_PROMPT, detector, 2, max_new_tokens=4)
    assert total == pytest.approx(1.0, abs=1e-5)  # the enumeration covers every continuation
    assert brute.min() > 0  # both labels occur, so the comparison means something
    return model, detector, brute


@pytest.mark.parametrize("padded", [False, True], ids=["alone", "left-padded-row"])
def test_tree_marginal_on_sliding_mistral_equals_brute_force(padded, marginal_setup):
    model, detector, brute = marginal_setup
    # Padded: the prompt is the shorter row of a batch, left-padded by 3.
    rows = [MARGINAL_PROMPT, MARGINAL_PROMPT + [7, 6, 1]] if padded else [MARGINAL_PROMPT]
    batch, pads = _prefill(model, rows)
    cache, pad = _row(batch, 0), pads[0]
    assert pad == (3 if padded else 0)
    width = int(cache.get_seq_length())
    allowed = torch.arange(width) >= pad
    with torch.no_grad():
        root = _logprobs(model, MARGINAL_PROMPT)[-1]
        # The padded row relies on the default positions (counted after the padding).
        positions = None if padded else torch.arange(width)
        expand = cached_expander(
            model, cache, allowed, len(MARGINAL_PROMPT), 5, prompt_positions=positions
        )
        result = tree_marginal(
            root,
            expand,
            detector,
            2,
            is_final=lambda path: path[-1] == EOS or len(path) >= 4,  # the process ends at 4
            top_p=1.0,
            eps=0.0,
            max_new_tokens=4,
        )
    np.testing.assert_allclose(result.probs, brute, atol=1e-5)
    assert result.unexplored == pytest.approx(0.0, abs=1e-6)
