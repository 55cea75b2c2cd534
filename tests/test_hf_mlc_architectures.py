"""`hf-mlc` end to end on tiny random models of several architectures and attention kernels.

Every label's probability at every step equals brute force (full uncached forwards of each
spelling), for full-attention and sliding-window models whose prompts pass the window. The
answer is scripted (its tokens forced, every logit and the cache from the model itself).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from brute_force import exact_step_probability, script_generation  # noqa: E402  (tests/)

from lm_eval_mlc.core.payload import load_payload
from lm_eval_mlc.harness.compat import make_instance
from lm_eval_mlc.harness.hf_mlc import HFMultiLabelLM

NAMES = ["joy", "anger", "sex_harassment", "S1", "S10"]
ANSWER = ' ["Joy", "S10", "anger"]'
PROMPT = (
    "Label the comment with every emotion that applies, as a JSON list of labels from: "
    "joy, anger, sex_harassment, S1, S10. Answer [] when none applies.\n\n"
    "Comment: what a lovely day, but that remark was out of line\nLabels:"
)
# mlc_prune=0: every spelling scored, so the numbers must equal brute force exactly.
GEN = {"until": ["\n\n"], "max_gen_toks": 16, "do_sample": False, "mlc_prune": 0}
WINDOW = 16


def _config(kind: str):
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config

    common = dict(
        vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    if kind == "llama":
        return LlamaConfig(**common)
    if kind == "mistral":
        return MistralConfig(**common, sliding_window=WINDOW)
    if kind == "qwen2":
        return Qwen2Config(
            **common, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1,
            layer_types=["full_attention", "sliding_attention"],
        )  # fmt: skip
    return Gemma3TextConfig(
        **common, head_dim=8, sliding_window=WINDOW,
        layer_types=["sliding_attention", "full_attention"],
    )  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(smollm2_tokenizer_dir, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    built = {}

    def make(kind: str):
        if kind not in built:
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(_config(kind))
            path = tmp_path_factory.mktemp(f"arch_{kind}")
            model.save_pretrained(path)
            for file in smollm2_tokenizer_dir.iterdir():
                shutil.copy(file, path / file.name)
            built[kind] = path
        return built[kind]

    return make


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", ["llama", "mistral", "qwen2", "gemma3"])
def test_every_label_at_every_step_equals_brute_force(model_dir, kind, attn):
    lm = HFMultiLabelLM(
        pretrained=str(model_dir(kind)), device="cpu", batch_size=2, dtype="float32",
        attn_implementation=attn,
    )  # fmt: skip
    context = lm.tok_encode(PROMPT)
    assert len(context) > 2 * WINDOW  # the prompt passes the sliding window
    gen = script_generation(lm, ANSWER)
    # Two docs in one batch, one of them left-padded, as in a real run.
    prompts = [PROMPT, "Comment: short\nLabels:"]
    requests = [
        make_instance("generate_until", {"label_names": NAMES}, (p, dict(GEN)), i)
        for i, p in enumerate(prompts)
    ]
    payload = load_payload(lm.generate_until(requests)[0])
    written = {"joy": "Joy", "S10": "S10", "anger": "anger"}
    steps = [s for s in payload["steps"] if s["label"]]
    assert [s["label"] for s in steps] == ["joy", "S10", "anger"]
    for step in steps:
        for j, name in enumerate(NAMES):
            expected = exact_step_probability(
                lm, context, gen, step["token_index"], name, '"',
                written[name] if name == step["label"] else None,
            )  # fmt: skip
            assert step["probs"][j] == pytest.approx(expected, rel=1e-4, abs=1e-9), (step, name)
