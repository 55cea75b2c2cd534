"""`hf-mlc` on the real SmolLM2: payloads, exactness against uncached recomputation, batching."""

import json
import math

import pytest
from brute_force import exact_step_probability, greedy_ids, product_bound  # noqa: E402  (tests/)

from lm_eval_mlc.core.payload import load_payload
from lm_eval_mlc.core.registry import STRATEGY_NAMES
from lm_eval_mlc.harness.compat import make_instance
from lm_eval_mlc.harness.filters import strategy_view
from lm_eval_mlc.harness.options import MlcOptions

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
        make_instance(
            "generate_until", doc, (f"{SHOTS}Comment: {text}\nEmotions:", dict(gen_kwargs)), i
        )
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
    """P(label complete) at real steps, recomputed from scratch with one full forward per
    spelling (case variants split by the tokenizer on the whole text, plus what was written)."""
    lm = smollm2_lm
    checked = 0
    for request, payload in zip(_requests(GEN), payloads, strict=True):
        steps = [s for s in payload["steps"] if s["label"]]
        if not steps:
            continue
        context, gen = greedy_ids(lm, request.args[0], GEN["max_gen_toks"])
        step = steps[0]
        quote = '"' if '"' in payload["text"] else ""  # quoted JSON, or a bare list
        for j, name in enumerate(NAMES[:4]):
            written = step["label"] if name == step["label"] else None
            t = step["token_index"]
            expected = exact_step_probability(lm, context, gen, t, name, quote, written)
            # Skipped spellings (first token below mlc_prune) can only lower the value, by at
            # most the step's reported bound.
            assert step["probs"][j] <= expected * (1 + 1e-3) + 1e-6, name
            assert step["probs"][j] >= expected * (1 - 1e-3) - 1e-6 - step["pruned_mass"], name
            assert step["pruned_mass"] <= 4 * 1e-4 * len(NAMES)
            checked += 1
    assert checked >= 8


CAPITALISED = (
    'Comment: I love it, thank you so much!\nEmotions: ["Joy", "Admiration"]\n\n'
    'Comment: This is scary and so sad.\nEmotions: ["Fear", "Sadness"]\n\n'
    'Comment: Why would you do that? I am so angry.\nEmotions: ["Anger"]\n\n'
    'Comment: Oh wow, I did not see that coming!\nEmotions: ["Surprise"]\n\n'
    'Comment: I hope tomorrow is better.\nEmotions: ["Optimism"]\n\n'
)
CAPITALISED_TEXTS = [*TEXTS, "I am terrified of the dark.", "This makes me so mad."]


def test_capitalised_answers_are_scored_as_generated(smollm2_lm):
    """With capitalised few-shot answers the model writes `Joy`; the probability reported for
    the label at its step is at least P(its generated tokens) x P(the generated ending token)."""
    lm = smollm2_lm
    lm.batch_size_per_gpu = 4
    requests = [
        make_instance("generate_until", {"label_names": NAMES},
                 (f"{CAPITALISED}Comment: {text}\nEmotions:", dict(GEN)), i)
        for i, text in enumerate(CAPITALISED_TEXTS)
    ]  # fmt: skip
    payloads = [load_payload(r) for r in lm.generate_until(requests)]
    checked = capitalised = 0
    for request, payload in zip(requests, payloads, strict=True):
        context, gen = greedy_ids(lm, request.args[0], GEN["max_gen_toks"])
        for step in payload["steps"]:
            assert "generated_tokens_match" in step
            if step["label"] is None:
                assert step["generated_tokens_match"] is None
                continue
            assert isinstance(step["generated_tokens_match"], bool)
            j = NAMES.index(step["label"])
            bound = product_bound(lm, context, gen, step["token_index"], step["label"])
            assert step["probs"][j] >= bound * (1 - 1e-3) - 1e-7
            checked += 1
            capitalised += step["label"].capitalize() in payload["text"]
    assert checked >= 3 and capitalised >= 2  # the model did write capitalised labels


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
    gen = {**GEN, "mlc_strategies": "all", "mlc_eps": eps, "mlc_max_new_tokens": 12,
           "mlc_samples": 4}  # fmt: skip
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


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval, written out (Wilson 1927; Agresti & Coull 1998, eq. 2)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_sampled_shares_intervals_and_seeding(smollm2_lm):
    """`sampled`: shares of 16 seeded samples with Wilson intervals, identical on rerun and in
    another batching, and consistent with the tree search's bracket at full depth."""
    n = 16
    gen = {**GEN, "mlc_strategies": "sampled,marginal", "mlc_samples": n, "mlc_eps": 0.002}
    requests = _requests(gen)[:3]
    smollm2_lm.batch_size_per_gpu = 3
    payloads = [load_payload(r) for r in smollm2_lm.generate_until(requests)]
    smollm2_lm.batch_size_per_gpu = 1
    again = [load_payload(r) for r in smollm2_lm.generate_until(requests)]
    found = 0
    for payload, other in zip(payloads, again, strict=True):
        assert payload["strategies"]["sampled"] == other["strategies"]["sampled"]
        assert payload["options"]["samples"] == n
        upper = payload["marginal_unexplored"]
        for share, (lo, hi), m in zip(
            payload["strategies"]["sampled"], payload["sampled_ci"],
            payload["strategies"]["marginal"], strict=True,
        ):  # fmt: skip
            k = round(share * n)
            assert share == pytest.approx(k / n)
            assert (lo, hi) == pytest.approx(_wilson(k, n), abs=1e-9)
            assert lo <= share <= hi
            # The estimate's interval meets the bracket [marginal, marginal + unexplored].
            assert lo <= m + upper + 1e-9 and hi >= m - 1e-9
            found += k > 0
    assert found >= 2  # some labels were sampled


def test_requests_without_a_label_set_get_plain_text(smollm2_lm):
    smollm2_lm.batch_size_per_gpu = 2
    out = smollm2_lm.generate_until(_requests(GEN, docs=[{}] * len(TEXTS))[:2])
    assert all(load_payload(r) is None and isinstance(r, str) for r in out)


def test_mlc_options_are_parsed_and_unknown_ones_rejected():
    kwargs = {"until": ["x"], "mlc_strategies": "marginal|joint", "mlc_top_p": "0.9"}
    options = MlcOptions.pop_from(kwargs)
    assert kwargs == {"until": ["x"]}  # removed before generate()
    assert options.strategies == ("generated", "marginal", "joint") and options.top_p == 0.9
    assert MlcOptions.pop_from({"mlc_strategies": "all"}).strategies == STRATEGY_NAMES
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

    from lm_eval_mlc.harness.plugin import task_manager

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
