"""Real Gemma-3 270M (sliding-window attention, window 512) through `hf-mlc` on `goemotions_ml`.

4-shot prompts are longer than the window, so the sliding layers must see only their window
while label tries are scored; every generated label's probability is checked against brute
force (full uncached forwards of each spelling).
"""

from __future__ import annotations

import os

import pytest
from brute_force import exact_step_probability, greedy_ids, product_bound  # noqa: E402  (tests/)

from lm_eval_mlc.core.payload import load_payload

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma3_lm(gemma3_gguf):
    from lm_eval_mlc.harness.hf_mlc import HFMultiLabelLM

    return HFMultiLabelLM(
        pretrained=str(gemma3_gguf.parent), gguf_file=gemma3_gguf.name, device="cpu",
        batch_size=1, dtype="float32",
    )  # fmt: skip


# 4-shot GoEmotions prompts are ~230 tokens with this tokenizer; 24 shots pass the window.
# The 24-shot case takes ~4.5 min on 2 cores, so it runs only with LM_EVAL_MLC_LONG=1 (the
# tiny Gemma-3 of test_hf_mlc_architectures checks prompts past the window against brute force).
LONG = pytest.mark.skipif(
    not os.environ.get("LM_EVAL_MLC_LONG"), reason="set LM_EVAL_MLC_LONG=1 (about 4.5 min)"
)


@pytest.mark.parametrize(("shots", "limit"), [(4, 1), pytest.param(24, 1, marks=LONG)])
def test_gemma3_run_matches_brute_force(gemma3_lm, data_dir, shots, limit):
    """The run completes; the first generated label of each doc equals brute force."""
    from lm_eval import simple_evaluate

    from lm_eval_mlc.harness.plugin import task_manager
    from lm_eval_mlc.scoring.tree_attention import attention_layer_types, attention_window

    lm = gemma3_lm
    window = attention_window(lm.model.config)
    assert window == 512 and "sliding_attention" in attention_layer_types(lm.model.config)
    out = simple_evaluate(
        model=lm, tasks=["goemotions_ml"], limit=limit, num_fewshot=shots, log_samples=True,
        task_manager=task_manager(metadata={"data_dir": str(data_dir)}),
    )  # fmt: skip
    samples = out["samples"]["goemotions_ml"]
    assert out["results"]["goemotions_ml"]["micro_f1,conditional"] >= 0.0  # the run completed
    checked = 0
    for sample in samples:
        prompt = sample["arguments"][0][0]  # (context, generation kwargs) of its one request
        context = lm.tok_encode(prompt)
        assert len(context) > window or shots == 4  # past the sliding window
        payload = load_payload(sample["resps"][0][0])
        names = payload["labels"]
        steps = [s for s in payload["steps"] if s["label"]]
        if not steps:
            continue
        _, gen = greedy_ids(lm, prompt, steps[0]["token_index"] + 12)
        quote = '"' if '"' in payload["text"] else ""
        for step in steps[:1]:
            assert isinstance(step["generated_tokens_match"], bool)
            j = names.index(step["label"])
            t = step["token_index"]
            exact = exact_step_probability(lm, context, gen, t, step["label"], quote, step["label"])
            assert step["probs"][j] <= exact * (1 + 1e-3) + 1e-6
            assert step["probs"][j] >= exact * (1 - 1e-3) - 1e-6 - step["pruned_mass"]
            assert step["probs"][j] >= product_bound(lm, context, gen, t, step["label"]) * (
                1 - 1e-3
            )
            checked += 1
    assert checked >= 1
