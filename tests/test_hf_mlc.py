"""`hf-mlc` on the real SmolLM2: payloads, exactness against uncached recomputation, batching."""

import json
import math

import pytest
import torch
from lm_eval.api.instance import Instance

from lm_eval_mlc.filters import strategy_view
from lm_eval_mlc.label_spans import label_spans
from lm_eval_mlc.models.hf_mlc import ALL_STRATEGIES, MlcOptions
from lm_eval_mlc.payload import load_payload

NAMES = ["joy", "optimism", "admiration", "surprise", "fear", "sadness", "anger"]
SHOTS = (
    'Comment: I love it, thank you so much!\nEmotions: ["joy", "admiration"]\n\n'
    'Comment: This is scary and so sad.\nEmotions: ["fear", "sadness"]\n\n'
    "Comment: It is a table.\nEmotions: []\n\n"
)
TEXTS = [
    "Wow, I did not expect that, amazing!",
    "I hate this, it makes me furious.",
    "I hope it gets better tomorrow.",
    "My dog died today.",
]


def _requests(gen_kwargs, docs=None):
    docs = docs or [{"label_names": NAMES}] * len(TEXTS)
    return [
        Instance("generate_until", doc, (f"{SHOTS}Comment: {text}\nEmotions:", dict(gen_kwargs)), i)
        for i, (doc, text) in enumerate(zip(docs, TEXTS, strict=True))
    ]


GEN = {"until": ["\n\n", "Comment:"], "max_gen_toks": 24, "do_sample": False}


@pytest.fixture(scope="module")
def payloads(smollm2_lm):
    smollm2_lm.batch_size_per_gpu = 4
    return [load_payload(r) for r in smollm2_lm.generate_until(_requests(GEN))]


pytestmark = pytest.mark.slow


def test_payload_has_text_steps_and_step_strategies(payloads):
    assert all(p is not None for p in payloads)
    assert sum(1 for p in payloads for s in p["steps"] if s["label"]) >= 3  # labels were generated
    for p in payloads:
        assert set(p["strategies"]) == {"first_step", "max_over_steps", "conditional", "joint"}
        for probs in p["strategies"].values():
            assert len(probs) == len(NAMES) and all(0.0 <= x <= 1.0 for x in probs)
        for step in p["steps"]:
            assert sum(step["probs"]) + step["none"] == pytest.approx(1.0, abs=1e-6) or (
                sum(step["probs"]) > 1.0 - 1e-6 and step["none"] == 0.0
            )
            if step["label"]:
                assert step["label"] in NAMES
                assert step["label"].casefold() in p["text"].casefold()


def test_step_probabilities_equal_uncached_recomputation(smollm2_lm, payloads):
    """P(label complete) at a real step, recomputed from scratch with one full forward per label."""
    lm = smollm2_lm
    doc_payload = next(p for p in payloads if any(s["label"] for s in p["steps"]))
    index = payloads.index(doc_payload)
    request = _requests(GEN)[index]
    step = next(s for s in doc_payload["steps"] if s["label"])
    context = lm.tok_encode(request.args[0])
    with torch.no_grad():
        generated = lm.model.generate(
            torch.tensor([context]), max_new_tokens=24, do_sample=False,
            pad_token_id=lm.tokenizer.pad_token_id,
        )[0, len(context):].tolist()  # fmt: skip
    t = step["token_index"]
    text = lm.tok_decode(generated, skip_special_tokens=False)
    offset = len(lm.tok_decode(generated[:t], skip_special_tokens=False))
    span = next(sp for sp in label_spans(text, NAMES) if NAMES[sp.label] == step["label"])
    lead = text[offset : span.start]
    vocab_text = lm.tokenizer.batch_decode([[i] for i in range(len(lm.tokenizer))])
    # What may end a label: its closing quote, or (unquoted) a delimiter, bracket or EOS.
    closers = [i for i, s in enumerate(vocab_text) if s[:1] and s[:1] in (span.quote or ",]\n;")]
    closers += [] if span.quote else [lm.eot_token_id]
    for j, name in enumerate(NAMES[:3]):
        label = lm.tok_encode(lead + name, add_special_tokens=False)
        with torch.no_grad():
            logits = lm.model(torch.tensor([context + generated[:t] + label])).logits[0]
        lp = torch.log_softmax(logits.double(), -1)
        start = len(context) + t - 1
        total = sum(lp[start + i, tok].item() for i, tok in enumerate(label))
        total += torch.logsumexp(lp[-1, closers], 0).item()
        assert step["probs"][j] == pytest.approx(math.exp(total), rel=1e-3, abs=1e-6)


def test_batched_results_equal_unbatched_and_runs_are_identical(smollm2_lm, payloads):
    smollm2_lm.batch_size_per_gpu = 1
    single = [load_payload(r) for r in smollm2_lm.generate_until(_requests(GEN))]
    again = [load_payload(r) for r in smollm2_lm.generate_until(_requests(GEN))]
    assert single == again  # deterministic
    for a, b in zip(payloads, single, strict=True):
        assert a["text"] == b["text"]
        for name in a["strategies"]:
            assert a["strategies"][name] == pytest.approx(b["strategies"][name], abs=1e-4)


def test_marginal_on_request_reports_unexplored_mass(smollm2_lm):
    smollm2_lm.batch_size_per_gpu = 4
    eps = 0.01
    gen = {**GEN, "mlc_strategies": "all", "mlc_eps": eps, "mlc_max_new_tokens": 12}
    payloads = [load_payload(r) for r in smollm2_lm.generate_until(_requests(gen))]
    checked = 0
    for payload in payloads:
        marginal, joint = payload["strategies"]["marginal"], payload["strategies"]["joint"]
        assert 0.0 <= payload["marginal_unexplored"] <= 1.0
        assert all(0.0 <= p <= 1.0 for p in marginal)
        assert payload["options"]["eps"] == eps
        # A label generated greedily with joint probability well above eps lies on a path the
        # search keeps (greedy tokens are top-1), so the search must find it.
        for m, j in zip(marginal, joint, strict=True):
            if j >= 3 * eps:
                checked += 1
                assert m > 0
    assert checked >= 1


def test_requests_without_a_label_set_get_plain_text(smollm2_lm):
    smollm2_lm.batch_size_per_gpu = 2
    out = smollm2_lm.generate_until(_requests(GEN, docs=[{}] * len(TEXTS))[:2])
    assert all(load_payload(r) is None and isinstance(r, str) for r in out)


def test_mlc_options_are_parsed_and_unknown_ones_rejected():
    kwargs = {"until": ["x"], "mlc_strategies": "marginal|joint", "mlc_top_p": "0.9"}
    options = MlcOptions.pop_from(kwargs)
    assert kwargs == {"until": ["x"]}  # removed before generate()
    assert options.strategies == ("generated", "marginal", "joint") and options.top_p == 0.9
    assert MlcOptions.pop_from({"mlc_strategies": "all"}).strategies == ALL_STRATEGIES
    with pytest.raises(ValueError, match="mlc_topp"):
        MlcOptions.pop_from({"mlc_topp": 0.5})
    with pytest.raises(ValueError, match="mlc_strategies"):
        MlcOptions.pop_from({"mlc_strategies": "best"})


def test_strategy_views_of_plain_text_and_payloads():
    assert strategy_view("joy", "generated") == {"strategy": "generated", "text": "joy"}
    assert strategy_view("joy", "marginal") is None
    payload = json.dumps(
        {
            "format": "lm-eval-mlc",
            "version": 1,
            "text": '["joy"]',
            "labels": ["joy"],
            "steps": [],
            "strategies": {"first_step": [0.7]},
            "options": {"threshold": 0.5},
        }
    )
    assert strategy_view(payload, "first_step")["probs"] == [0.7]
    assert strategy_view(payload, "marginal") is None
    assert strategy_view(payload, "generated")["text"] == '["joy"]'


def test_use_cache_stores_payloads_and_a_rerun_computes_nothing(
    smollm2_lm, data_dir, tmp_path, monkeypatch
):
    from lm_eval import simple_evaluate

    from lm_eval_mlc.plugin import task_manager

    def run():
        out = simple_evaluate(
            model=smollm2_lm, tasks=["goemotions_ml"], limit=2, num_fewshot=1,
            use_cache=str(tmp_path / "cache"), log_samples=True,
            task_manager=task_manager(metadata={"data_dir": str(data_dir)}),
        )  # fmt: skip
        return out["results"]["goemotions_ml"], out["samples"]["goemotions_ml"]

    first, samples = run()
    assert load_payload(samples[0]["resps"][0][0]) is not None

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached run called the model")

    monkeypatch.setattr(smollm2_lm, "_generate_batch", must_not_run)
    second, _ = run()
    assert {k: v for k, v in second.items() if "alias" not in k} == pytest.approx(
        {k: v for k, v in first.items() if "alias" not in k}, nan_ok=True
    )
