"""`hf-mlc` keeps `hf`'s behaviour where it should: answer text, thinking, batch size, precision."""

from __future__ import annotations

import pytest
import torch
from brute_force import script_generation  # noqa: E402  (tests/)
from lm_eval.models.huggingface import HFLM

from lm_eval_mlc.core.payload import load_payload
from lm_eval_mlc.harness.compat import make_instance
from lm_eval_mlc.harness.hf_mlc import HFMultiLabelLM
from lm_eval_mlc.harness.options import case_variants

NAMES = ["joy", "anger"]
GEN = {"until": ["\n\n"], "max_gen_toks": 12, "do_sample": False}


def _requests(prompts, doc=None, gen=GEN):
    doc = {"label_names": NAMES} if doc is None else doc
    return [make_instance("generate_until", doc, (p, dict(gen)), i) for i, p in enumerate(prompts)]


@pytest.fixture
def lm(tiny_model_dir):
    return HFMultiLabelLM(pretrained=str(tiny_model_dir("llama")), device="cpu", batch_size=2)


def test_text_is_hf_text_special_tokens_skipped(lm):
    """The payload's text is what `hf` returns for the same tokens (special tokens skipped)."""
    answer = ' ["joy"]<|endoftext|> tail'
    script_generation(lm, answer)
    (response,) = lm.generate_until(_requests(["Comment: hi\nEmotions:"]))
    hf = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=1)
    (plain,) = hf.generate_until(_requests(["Comment: hi\nEmotions:"], doc={}))
    payload = load_payload(response)
    assert payload["text"] == plain
    assert "<|endoftext|>" not in payload["text"]
    assert [s["label"] for s in payload["steps"]] == ["joy"]


def test_think_end_token_drops_the_reasoning(tiny_model_dir):
    lm = HFMultiLabelLM(
        pretrained=str(tiny_model_dir("llama")), device="cpu", batch_size=1,
        think_end_token="</think>",
    )  # fmt: skip
    script_generation(lm, ' thinking about "anger" here </think> ["joy"]')
    payload = load_payload(lm.generate_until(_requests(["Comment: hi\nEmotions:"]))[0])
    assert payload["text"] == '["joy"]'
    assert [s["label"] for s in payload["steps"]] == ["joy"]  # no step inside the reasoning


def test_batch_size_auto_is_detected_once(tiny_model_dir, monkeypatch):
    lm = HFMultiLabelLM(
        pretrained=str(tiny_model_dir("llama")), device="cpu", batch_size="auto",
        max_batch_size=4, max_length=64,
    )  # fmt: skip
    calls = []
    monkeypatch.setattr(lm, "_detect_batch_size", lambda *a, **k: calls.append(1) or 3)
    script_generation(lm, ' ["anger"]')
    out = lm.generate_until(_requests(["Comment: a\nEmotions:"] * 5))
    out += lm.generate_until(_requests(["Comment: b\nEmotions:"] * 2))
    assert len(calls) == 1 and all(load_payload(r)["steps"] for r in out)


def test_mixed_precision_autocast_wraps_every_forward(tiny_model_dir):
    lm = HFMultiLabelLM(
        pretrained=str(tiny_model_dir("llama")), device="cpu", batch_size=1,
        mixed_precision_dtype="bfloat16",
    )  # fmt: skip
    seen = []
    hook = lm.model.register_forward_pre_hook(
        lambda module, args: seen.append(torch.is_autocast_enabled("cpu"))
    )
    script_generation(lm, ' ["joy", "anger"]')
    payload = load_payload(lm.generate_until(_requests(["Comment: hi\nEmotions:"]))[0])
    hook.remove()
    assert payload["steps"] and len(seen) >= 2 and all(seen)  # generation and label scoring


def test_case_variants_are_the_documented_spellings():
    assert case_variants("joy") == ["joy", "Joy", "JOY"]
    assert case_variants("sex_harassment") == ["sex_harassment", "Sex_harassment", "SEX_HARASSMENT"]
    assert case_variants("don't know") == ["don't know", "Don't know", "Don't Know", "DON'T KNOW"]
    assert case_variants("S10") == ["S10", "s10"]
