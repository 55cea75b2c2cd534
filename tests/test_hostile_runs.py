"""`hf-mlc` under hostile conditions: broken checkpoints, prompts past the context, a shared cache.

Tiny random checkpoints (`tiny_model_dir`) keep these fast. Where a test needs the model to
write labels, its generation is *scripted*: the answer tokens are forced, but every logit and
the KV cache still come from the model's own forward pass, as in `generate()`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from brute_force import script_generation  # noqa: E402  (tests/)
from lm_eval.api.instance import Instance

from lm_eval_mlc.core.payload import load_payload
from lm_eval_mlc.harness import records as harness
from lm_eval_mlc.harness.cache_key import model_fingerprint, table_name
from lm_eval_mlc.harness.compat import make_instance
from lm_eval_mlc.harness.filters import strategy_view
from lm_eval_mlc.harness.hf_mlc import HFMultiLabelLM

NAMES = ["admiration", "amusement", "disappointment", "nervousness", "joy"]
ANSWER = ' ["disappointment", "nervousness"]'
FIXTURE = Path(__file__).parent / "fixtures" / "goemotions_raw"
GEN = {"until": ["\n\n"], "max_gen_toks": 16, "do_sample": False}


def _lm(path, batch_size: int = 2) -> HFMultiLabelLM:
    return HFMultiLabelLM(
        pretrained=str(path), device="cpu", batch_size=batch_size, dtype="float32"
    )


def _requests(contexts, gen_kwargs=GEN) -> list[Instance]:
    doc = {"label_names": NAMES}
    return [
        make_instance("generate_until", doc, (context, dict(gen_kwargs)), i)
        for i, context in enumerate(contexts)
    ]


def _script(lm: HFMultiLabelLM, answer: str = ANSWER) -> None:
    """Make `lm.model.generate` write `answer` (then stop), with the model's own logits/cache."""
    script_generation(lm, answer)


def _check_finite_payload(payload: dict) -> None:
    for name, probs in payload["strategies"].items():
        assert all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs), name
    for step in payload["steps"]:
        assert all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in step["probs"])


# --- context overflow -------------------------------------------------------------------------


def test_prompts_past_the_context_are_left_truncated_with_one_warning(tiny_model_dir, caplog):
    """GPT-2 has learned positions: a label scored past `n_positions` would be an IndexError."""
    lm = _lm(tiny_model_dir("gpt2", positions=96), batch_size=2)
    answer = ' ["joy"]'  # a short label last: the longer labels scored there reach further
    _script(lm, answer)
    long = "Comment: " + "so very long and winding " * 60 + "\nEmotions:"
    contexts = [long, "Comment: short\nEmotions:", long + " again"]
    n_answer = len(lm.tok_encode(answer, add_special_tokens=False))
    # generation fills its whole budget; left truncation asked for explicitly
    gen = {**GEN, "max_gen_toks": n_answer, "mlc_truncation": "left"}
    with caplog.at_level(logging.WARNING):
        responses = lm.generate_until(_requests(contexts, gen))
    payloads = [load_payload(r) for r in responses]
    assert [p["text"] for p in payloads] == [answer] * 3
    for payload in payloads:
        assert [s["label"] for s in payload["steps"]] == ["joy"]
        _check_finite_payload(payload)
    warnings = [r.getMessage() for r in caplog.records if "truncated from the left" in r.message]
    assert len(warnings) == 1 and warnings[0].startswith("hf-mlc: 2 of 3 prompts")
    assert not any("Left truncation applied" in r.getMessage() for r in caplog.records)


def test_unary_prompts_past_the_context_are_truncated_with_one_warning(tiny_model_dir, caplog):
    """Log-likelihood requests (unary tasks): one summary instead of one warning per request."""
    lm = _lm(tiny_model_dir("gpt2", positions=96))
    long = "Comment: " + "so very long and winding " * 60 + "\nIs it joy?"
    contexts = [long, "Comment: short\nIs it joy?", long + " again"]
    requests = [
        make_instance("loglikelihood", {}, (context, answer), i)
        for i, (context, answer) in enumerate((c, a) for c in contexts for a in (" Yes", " No"))
    ]
    with caplog.at_level(logging.WARNING):
        results = lm.loglikelihood(requests)
    assert len(results) == 6 and all(math.isfinite(ll) and ll < 0 for ll, _ in results)
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "truncated from the left" in m] == [
        "hf-mlc: 2 of 3 prompts were longer than the model's context (max_length 96, with the "
        "answer) and were truncated from the left; their start is lost."
    ]
    assert not any("Combined length of context" in m for m in messages)


def test_prompts_past_the_context_are_refused_before_generation_by_default(tiny_model_dir):
    """Cutting a multi-label prompt from the left would drop its instruction and label list."""
    lm = _lm(tiny_model_dir("gpt2", positions=96))

    def must_not_run(*args, **kwargs):
        raise AssertionError("generation ran before the length check")

    lm.model.generate = must_not_run
    long = "Comment: " + "so very long and winding " * 60 + "\nEmotions:"
    with pytest.raises(ValueError, match=r"1 of 2 multi-label prompts .* mlc_truncation=left"):
        lm.generate_until(_requests([long, "Comment: short\nEmotions:"]))


def test_sliding_window_prompts_past_the_window_are_scored(tiny_model_dir):
    """A private full-attention cache keeps every position; the window is applied by masks
    (equality with brute force: tests/test_hf_mlc_architectures.py)."""
    lm = _lm(tiny_model_dir("mistral"))  # window: 32 tokens
    _script(lm)
    long = "Comment: " + "so very long and winding " * 20 + "\nEmotions:"
    (response,) = lm.generate_until(_requests([long]))
    payload = load_payload(response)
    assert [s["label"] for s in payload["steps"]] == ["disappointment", "nervousness"]
    _check_finite_payload(payload)


def test_no_room_for_the_prompt_is_a_clear_error(tiny_model_dir):
    lm = _lm(tiny_model_dir("gpt2", positions=96))
    with pytest.raises(ValueError, match="do not fit the model.s context: max_length 96"):
        lm.generate_until(_requests(["Comment: hi"], {**GEN, "max_gen_toks": 90}))


# --- broken checkpoints -----------------------------------------------------------------------


@pytest.mark.parametrize("poison", [math.nan, math.inf])
def test_nonfinite_logits_are_counted_and_probabilities_stay_finite(tiny_model_dir, poison):
    """A checkpoint with NaN/inf in its output layer: counted, never NaN probabilities."""
    lm = _lm(tiny_model_dir("llama", seed=3))
    with torch.no_grad():
        lm.model.lm_head.weight[100] = poison  # every logit row now has a NaN/inf entry
    _script(lm)
    gen = {**GEN, "mlc_strategies": "all", "mlc_eps": 0.05}
    (response,) = lm.generate_until(_requests(["Comment: hi\nEmotions:"], gen))
    payload = load_payload(response)  # also proves the payload is valid JSON (no NaN)
    n_tokens = len(lm.tok_encode(ANSWER, add_special_tokens=False))
    assert payload["nonfinite_steps"] == n_tokens
    assert set(payload["strategies"]) == {"first_step", "max_over_steps", "conditional", "joint",
                                          "marginal", "sampled"}  # fmt: skip
    _check_finite_payload(payload)
    assert math.isfinite(payload["marginal_unexplored"])
    doc = {"labels": ["joy"], "label_names": NAMES, "annotator_probs": []}
    for strategy in ("generated", "first_step", "max_over_steps", "conditional", "joint",
                     "marginal", "sampled"):  # fmt: skip
        record = harness.process_results(doc, [strategy_view(response, strategy)])
        assert all(math.isfinite(p) and 0 <= p <= 1 for p in record["micro_f1"]["probs"])
    generated = harness.process_results(doc, [strategy_view(response, "generated")])
    assert generated["nonfinite_steps"] == n_tokens
    assert harness.total([generated["nonfinite_steps"]] * 3) == 3 * n_tokens


def test_a_healthy_checkpoint_reports_no_nonfinite_steps(tiny_model_dir):
    lm = _lm(tiny_model_dir("llama", seed=3))
    _script(lm)
    (response,) = lm.generate_until(_requests(["Comment: hi\nEmotions:"]))
    payload = load_payload(response)
    assert payload["nonfinite_steps"] == 0
    assert sum(payload["steps"][0]["probs"]) <= 1.0 + 1e-6
    _check_finite_payload(payload)


LONG_ANSWER = ' ["joy", "amusement"' + " and so on" * 120  # unclosed, then 360 tokens of noise


@pytest.mark.slow  # marginal and 32 samples over 400 tokens on four answers: minutes
@pytest.mark.parametrize(
    "answer", ["<|im_end|>", " I cannot answer that.", ' ["joy", "joy", "kiwi"', LONG_ANSWER]
)
def test_empty_offlabel_and_broken_answers_give_valid_payloads(tiny_model_dir, answer):
    """An immediate end of text, prose, a repeated label and an unclosed list, or hundreds of
    tokens of noise after the labels: a valid payload, never a crash."""
    lm = _lm(tiny_model_dir("llama", seed=3))
    _script(lm, answer)
    gen = {**GEN, "mlc_strategies": "all", "mlc_eps": 0.05, "max_gen_toks": 400}
    (response,) = lm.generate_until(_requests(["Comment: hi\nEmotions:"], gen))
    payload = load_payload(response)
    _check_finite_payload(payload)
    assert payload["text"] == answer.replace("<|im_end|>", "")
    labels = [step["label"] for step in payload["steps"]]
    expected = ["joy", "amusement"] if "amusement" in answer else ["joy"] if "joy" in answer else []
    assert labels == expected  # a repeated label is one step
    doc = {"labels": ["joy"], "label_names": NAMES, "annotator_probs": []}
    record = harness.process_results(doc, [strategy_view(response, "generated")])["micro_f1"]
    assert record["y_pred"] == [int(name in expected) for name in NAMES]
    noise = ("kiwi", "cannot", "so on")  # an off-label item, prose, trailing noise: 1 each
    assert record["n_invalid"] == (1 if any(n in answer for n in noise) else 0)


# --- the request cache ------------------------------------------------------------------------


def test_fingerprint_tells_checkpoints_apart_and_is_stable(tiny_model_dir):
    a, b = tiny_model_dir("llama", seed=0), tiny_model_dir("llama", seed=1)
    assert model_fingerprint(_lm(a)) == model_fingerprint(_lm(a))  # a rerun finds its entries
    assert model_fingerprint(_lm(a)) != model_fingerprint(_lm(b))  # same config, other weights


def test_fingerprint_of_api_and_vllm_style_wrappers_names_their_model():
    class Api:
        def __init__(self, model: str, base_url: str) -> None:
            self.model, self.base_url = model, base_url

    class VLLMLike:
        def __init__(self, model: str) -> None:
            self.model_args = {"model": model, "dtype": "auto"}

    assert model_fingerprint(Api("a", "http://x")) == model_fingerprint(Api("a", "http://x"))
    assert model_fingerprint(Api("a", "http://x")) != model_fingerprint(Api("b", "http://x"))
    assert model_fingerprint(Api("a", "http://x")) != model_fingerprint(Api("a", "http://y"))
    assert model_fingerprint(VLLMLike("a")) != model_fingerprint(VLLMLike("b"))


def test_two_models_never_share_cache_entries(tiny_model_dir, tmp_path):
    from lm_eval import simple_evaluate

    from lm_eval_mlc.harness.plugin import activate, task_manager

    activate()
    cache = tmp_path / "cache"
    calls: list[int] = []
    manager = task_manager(metadata={"data_dir": str(FIXTURE)})

    def run(lm: HFMultiLabelLM) -> dict:
        generate = lm.generate_until
        lm.generate_until = lambda reqs, *a, **k: calls.append(len(reqs)) or generate(reqs, *a, **k)
        out = simple_evaluate(
            model=lm, tasks=["goemotions_ml"], limit=2, num_fewshot=0, use_cache=str(cache),
            gen_kwargs="max_gen_toks=4",
            task_manager=manager,
        )  # fmt: skip
        return out["results"]["goemotions_ml"]

    first, second = _lm(tiny_model_dir("llama", seed=0)), _lm(tiny_model_dir("llama", seed=1))
    run(first)
    run(second)
    run(first)
    assert calls == [2, 2]  # the second model computed its own answers; the rerun hit the cache
    with sqlite3.connect(f"{cache}_rank0.db") as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
        counts = {t: db.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}
    assert counts[table_name(first)] == 2 and counts[table_name(second)] == 2
    assert counts.get("unnamed", 0) == 0  # the harness' shared default table stays empty


# --- crash and resume -------------------------------------------------------------------------

SLOW_MODEL = """
import os, time
from lm_eval_mlc.harness.hf_mlc import HFMultiLabelLM

_batch = HFMultiLabelLM._generate_batch


def _slow_batch(self, requests):
    time.sleep(0.3)  # long enough for the test to kill the run part-way
    out = _batch(self, requests)
    with open(os.environ["MLC_TEST_COUNT"], "a") as f:
        f.write(f"{len(requests)}\\n")
    return out


HFMultiLabelLM._generate_batch = _slow_batch
"""


def _cached_rows(db: Path) -> int:
    """Entries in the plugin's per-model tables of a cache file (0 while it does not exist)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            tables = [r[0] for r in conn.execute("select name from sqlite_master")]
            return sum(
                conn.execute(f'select count(*) from "{t}"').fetchone()[0]
                for t in tables
                if t.startswith("lm_eval_mlc_")
            )
    except sqlite3.OperationalError:  # locked mid-write: ask again
        return 0


def test_a_killed_run_resumes_from_the_cache_and_ends_identical(tiny_model_dir, tmp_path, data_dir):
    """SIGKILL part-way, rerun with the same `--use_cache`: finished docs are not recomputed and
    the results equal an uninterrupted run's."""
    from lm_eval import simple_evaluate

    from lm_eval_mlc.harness.plugin import task_manager

    limit, model_dir = 8, tiny_model_dir("llama", seed=5)
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(SLOW_MODEL)
    cache, count = tmp_path / "cache", tmp_path / "count"
    cmd = [
        *(sys.executable, "-m", "lm_eval", "--model", "hf-mlc", "--batch_size", "1"),
        *("--model_args", f"pretrained={model_dir},dtype=float32", "--device", "cpu"),
        *("--tasks", "goemotions_ml", "--limit", str(limit), "--num_fewshot", "0"),
        *("--gen_kwargs", "max_gen_toks=8"),
        *("--use_cache", str(cache), "--output_path", str(tmp_path / "out"), "--log_samples"),
    ]
    env = {
        **os.environ, "PYTHONPATH": str(tmp_path / "inject"), "MLC_TEST_COUNT": str(count),
        "LM_EVAL_MLC_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1",
    }  # fmt: skip
    db = Path(f"{cache}_rank0.db")
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _cached_rows(db) < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = _cached_rows(db)
    assert 3 <= done < limit, f"the kill landed after {done} of {limit} docs"

    count.write_text("")
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    recomputed = sum(int(n) for n in count.read_text().split())
    assert recomputed == limit - done  # finished docs came from the cache

    (results_file,) = (tmp_path / "out").glob("*/results_*.json")
    resumed = json.loads(results_file.read_text())["results"]["goemotions_ml"]
    (samples_file,) = (tmp_path / "out").glob("*/samples_goemotions_ml_*.jsonl")
    resumed_resps = [
        s["resps"] for s in map(json.loads, samples_file.read_text().splitlines())
        if s["filter"] == "generated"
    ]  # fmt: skip

    fresh = simple_evaluate(
        model="hf-mlc", model_args=f"pretrained={model_dir},dtype=float32", device="cpu",
        batch_size=1, tasks=["goemotions_ml"], limit=limit, num_fewshot=0, log_samples=True,
        gen_kwargs="max_gen_toks=8",
        task_manager=task_manager(metadata={"data_dir": str(data_dir)}),
    )  # fmt: skip
    fresh_resps = [
        s["resps"] for s in fresh["samples"]["goemotions_ml"] if s["filter"] == "generated"
    ]
    assert sorted(map(str, resumed_resps)) == sorted(map(str, fresh_resps))
    uninterrupted = json.loads(json.dumps(fresh["results"]["goemotions_ml"]))  # as saved
    assert uninterrupted.keys() == resumed.keys()
    for key, value in uninterrupted.items():
        assert resumed[key] == value or (value != value and resumed[key] != resumed[key]), key


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.slow
def test_same_run_is_byte_identical_and_batch_sizes_agree(smollm2_lm, data_dir):
    """Reruns give byte-identical metrics; batch 1 vs 8 agree within 1e-4 (absolute, or relative
    for unbounded ratios): padding changes the float summation order of attention only."""
    from lm_eval import simple_evaluate

    from lm_eval_mlc.harness.plugin import task_manager

    manager = task_manager(metadata={"data_dir": str(data_dir)})

    def run(batch_size: int) -> tuple[str, dict]:
        smollm2_lm.batch_size_per_gpu = batch_size
        out = simple_evaluate(
            model=smollm2_lm, tasks=["goemotions_ml"], limit=8, num_fewshot=0,
            gen_kwargs="max_gen_toks=24", task_manager=manager,
        )  # fmt: skip
        results = out["results"]["goemotions_ml"]
        return json.dumps(results, sort_keys=True), results

    first, results8 = run(8)
    again, _ = run(8)
    assert first == again
    _, results1 = run(1)
    assert results1.keys() == results8.keys()
    for key, value in results8.items():
        if isinstance(value, float) and not math.isnan(value):
            assert results1[key] == pytest.approx(value, rel=1e-4, abs=1e-4), key
        else:
            assert str(results1[key]) == str(value), key
