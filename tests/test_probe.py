"""The supervised probe: the fit against independent computations, feature extraction on tiny
random checkpoints (batched = one doc alone), prompts as the harness builds them, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lm_eval_mlc import cli
from lm_eval_mlc.harness.hf_mlc import HFMultiLabelLM
from lm_eval_mlc.harness.probe import (
    Probe,
    fit_probe,
    hidden_features,
    predict_proba,
    probe_metrics,
)
from lm_eval_mlc.reports import probe as probe_report
from lm_eval_mlc.reports.probe import (
    ANSWER_PREFIX,
    ProbeInputError,
    contexts,
    doc_arrays,
    load_task,
    run_probe,
    select,
)

FIXTURE_DATA = Path(__file__).parent / "fixtures" / "goemotions_raw"
TEXTS = [
    'Comment: short\nEmotions: ["',
    'Comment: a rather longer comment that needs many more tokens than the others\nEmotions: ["',
    'Comment: medium length text here\nEmotions: ["',
]


# --- the fit (pure NumPy / scikit-learn) -------------------------------------------------------
def test_soft_targets_minimise_the_soft_cross_entropy():
    """The duplicated-row fit equals a direct L-BFGS minimisation of the soft-label objective."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    q = expit(x @ [1.5, -1.0, 0.5, 0.0] + rng.normal(scale=0.5, size=60))
    q[:5] = [0.0, 1.0, 0.0, 1.0, 0.5]  # hard and soft rows mixed
    C = 0.5
    probe = fit_probe(x, q[:, None], n_components=3, C=C)
    z = probe.svd.transform(probe.scaler.transform(x))

    def objective(theta: np.ndarray) -> float:
        logits = z @ theta[:-1] + theta[-1]
        ce = -(q * log_expit(logits) + (1 - q) * log_expit(-logits)).sum()
        return C * ce + 0.5 * theta[:-1] @ theta[:-1]  # sklearn: intercept not penalised

    direct = minimize(objective, np.zeros(z.shape[1] + 1), method="BFGS", options={"gtol": 1e-9})
    clf = probe.classifiers[0]
    np.testing.assert_allclose(clf.coef_[0], direct.x[:-1], atol=2e-3)
    np.testing.assert_allclose(clf.intercept_[0], direct.x[-1], atol=2e-3)
    np.testing.assert_allclose(
        predict_proba(probe, x)[:, 0], expit(z @ direct.x[:-1] + direct.x[-1]), atol=1e-3
    )


def test_hard_targets_equal_a_plain_scikit_learn_pipeline():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 10))
    y = (x[:, :3] + rng.normal(scale=0.7, size=(80, 3)) > 0).astype(int)
    probe = fit_probe(x, y, label_names=["a", "b", "c"], n_components=5, seed=7)
    for j in range(3):
        pipe = make_pipeline(
            StandardScaler(), TruncatedSVD(5, random_state=7), LogisticRegression(max_iter=1000)
        ).fit(x, y[:, j])
        np.testing.assert_allclose(predict_proba(probe, x)[:, j], pipe.predict_proba(x)[:, 1])
    assert probe.label_names == ("a", "b", "c")


def test_separable_features_give_near_perfect_held_out_f1():
    rng = np.random.default_rng(2)
    gold = (rng.random((300, 4)) < 0.3).astype(int)
    # each label moves 16 correlated dimensions: the signal spans the top SVD components
    x = gold @ rng.normal(size=(4, 16)) + rng.normal(scale=0.3, size=(300, 16))
    probe = fit_probe(x[:200], gold[:200], n_components=10)
    probs = predict_proba(probe, x[200:])
    scores = probe_metrics(gold[200:], probs)
    assert scores["micro_f1"] > 0.95
    expected = f1_score(gold[200:], (probs >= 0.5).astype(int), average="micro")
    assert scores["micro_f1"] == pytest.approx(expected)
    assert scores["brier"] == pytest.approx(np.mean((probs - gold[200:]) ** 2))
    assert "align_mae" not in scores


def test_constant_labels_predict_their_rate_and_metrics_stay_finite():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 6))
    targets = np.column_stack([np.zeros(30), np.full(30, 0.25), (x[:, 0] > 0).astype(float)])
    probe = fit_probe(x, targets)
    probs = predict_proba(probe, rng.normal(size=(5, 6)))
    assert probs.shape == (5, 3)
    np.testing.assert_array_equal(probs[:, 0], 0.0)
    np.testing.assert_array_equal(probs[:, 1], 0.25)
    assert probe.classifiers[0] == 0.0 and isinstance(probe.classifiers[2], LogisticRegression)
    q = np.tile([0.0, 0.25, 0.5], (5, 1))
    scores = probe_metrics(np.zeros((5, 3), int), probs, q)
    assert all(np.isfinite(scores[k]) for k in ("micro_f1", "ece_em10", "brier", "align_bce"))
    assert scores["align_mae"] == pytest.approx(np.mean(np.abs(probs - q)))


def test_svd_dimensions_are_capped_by_features_and_rows():
    rng = np.random.default_rng(4)
    assert fit_probe(rng.normal(size=(10, 50)), rng.random((10, 2))).n_components == 9
    assert fit_probe(rng.normal(size=(100, 8)), rng.random((100, 2))).n_components == 7
    assert fit_probe(rng.normal(size=(100, 80)), rng.random((100, 2))).n_components == 64
    one = fit_probe(rng.normal(size=(20, 1)), rng.random((20, 1)))
    assert one.svd is None and one.n_components == 1


@pytest.mark.parametrize(
    ("features", "targets", "match"),
    [
        (np.zeros((1, 3)), np.zeros((1, 2)), "at least 2 training rows"),
        (np.zeros((4, 3)), np.full((4, 2), 1.5), r"in \[0, 1\]"),
        (np.zeros((4, 3)), np.zeros((5, 2)), "5 feature rows"),
        (np.full((4, 3), np.nan), np.zeros((4, 2)), "finite"),
    ],
)
def test_bad_fit_input_is_a_clear_error(features, targets, match):
    with pytest.raises(ValueError, match=match):
        fit_probe(features, targets)


def test_predict_rejects_a_different_feature_width():
    probe = fit_probe(np.random.default_rng(5).normal(size=(10, 4)), np.eye(10)[:, :2])
    with pytest.raises(ValueError, match="Expected 4 features per row"):
        predict_proba(probe, np.zeros((2, 5)))


# --- docs -> arrays ----------------------------------------------------------------------------
def test_doc_arrays_reads_gold_and_annotators_and_names_bad_docs():
    names = ["a", "b"]
    docs = [
        {"labels": ["b"], "label_names": names, "annotator_probs": [0.25, 0.75]},
        {"labels": [], "label_names": names, "annotator_probs": [0.0, 0.5]},
    ]
    arrays = doc_arrays(docs, "t (train split)")
    np.testing.assert_array_equal(arrays.gold, [[0, 1], [0, 0]])
    np.testing.assert_array_equal(arrays.annotator_probs, [[0.25, 0.75], [0.0, 0.5]])
    assert doc_arrays([*docs, {**docs[0], "annotator_probs": []}], "t").annotator_probs is None
    with pytest.raises(ProbeInputError, match=r"t \(train split\): doc 1: field 'labels'"):
        doc_arrays([docs[0], {**docs[1], "labels": ["zzz"]}], "t (train split)")
    with pytest.raises(ProbeInputError, match="doc 0: field 'label_names'"):
        doc_arrays([{"labels": []}], "t")
    with pytest.raises(ProbeInputError, match="no docs"):
        doc_arrays([], "t")


def test_select_takes_the_first_docs_or_a_seeded_sample_in_order():
    docs = list(range(100))
    assert select(docs, 5) == [0, 1, 2, 3, 4]
    sample = select(docs, 10, seed=3)
    assert sample == sorted(sample) and len(set(sample)) == 10
    assert sample == select(docs, 10, seed=3)
    assert sample != select(docs, 10, seed=4)
    assert select(docs, 500, seed=3) == docs
    with pytest.raises(ProbeInputError, match="limit >= 1"):
        select(docs, 0)


def test_a_task_without_training_split_is_refused():
    task = SimpleNamespace(config=SimpleNamespace(task="t"), has_training_docs=lambda: False)
    with pytest.raises(ProbeInputError, match="'t' has no training split"):
        run_probe(None, task)


# --- feature extraction on tiny random checkpoints ---------------------------------------------
@pytest.mark.parametrize("kind", ["llama", "gpt2"])  # gpt2: absolute positions
def test_batched_features_equal_each_doc_alone(tiny_model_dir, kind):
    lm = HFMultiLabelLM(pretrained=str(tiny_model_dir(kind)), device="cpu", dtype="float32")
    batched = hidden_features(lm, TEXTS, batch_size=3)
    alone = hidden_features(lm, TEXTS, batch_size=1)
    assert batched.shape == (3, 32)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    with torch.no_grad():
        for text, row in zip(TEXTS, batched, strict=True):
            ids = lm.tokenizer(text, return_tensors="pt").input_ids
            direct = lm.model(ids, output_hidden_states=True).hidden_states[-1][0, -1]
            np.testing.assert_allclose(row, direct.numpy(), atol=1e-5)
    if kind == "llama":  # layer 0: the token embedding of the last token
        first = hidden_features(lm, TEXTS, layer=0, batch_size=3)
        last_ids = [lm.tokenizer(t).input_ids[-1] for t in TEXTS]
        embedded = lm.model.get_input_embeddings().weight[last_ids].detach().numpy()
        np.testing.assert_allclose(first, embedded, atol=1e-6)
    with pytest.raises(ValueError, match=r"`layer` in \[-3, 2\]"):
        hidden_features(lm, TEXTS, layer=3)


# --- prompts as the harness builds them, and the CLI -------------------------------------------
@pytest.fixture(scope="module")
def fixture_task():
    return load_task("goemotions_ml", {"data_dir": str(FIXTURE_DATA)})


@pytest.mark.parametrize("chat", [False, True])
def test_contexts_are_the_harness_prompts_plus_the_answer_opening(
    fixture_task, tiny_model_dir, chat
):
    lm = HFMultiLabelLM(pretrained=str(tiny_model_dir("llama")), device="cpu")
    chat_template = lm.apply_chat_template if chat else None
    fixture_task.build_all_requests(apply_chat_template=chat, chat_template=chat_template)
    harness_prompts = [inst.args[0] for inst in fixture_task.instances]
    docs = list(fixture_task.eval_docs)
    ours = contexts(fixture_task, docs, lm, apply_chat_template=chat)
    opening = '["' if chat else ' ["'
    assert ANSWER_PREFIX == json.dumps(docs[0]["labels"])[:2] == '["'
    assert ours == [prompt + opening for prompt in harness_prompts]
    assert ours[0].endswith('<|im_start|>assistant\n["' if chat else 'Emotions: ["')


def test_cli_fits_scores_and_saves_on_a_tiny_model(
    tmp_path, tiny_model_dir, fixture_task, monkeypatch, capsys
):
    def load_fixture_task(name: str, metadata: dict) -> object:  # one TaskManager build less
        assert (name, metadata) == ("goemotions_ml", {"data_dir": str(FIXTURE_DATA)})
        return fixture_task

    monkeypatch.setattr(probe_report, "load_task", load_fixture_task)
    report_path, probe_path = tmp_path / "report.json", tmp_path / "probe.joblib"
    argv = ["probe", "--metadata", json.dumps({"data_dir": str(FIXTURE_DATA)}), "--model", "hf"]
    argv += ["--model_args", f"pretrained={tiny_model_dir('llama')},dtype=float32"]
    # No --device: the default must fall back to the CPU where there is no GPU, as lm_eval does.
    argv += ["--output", str(report_path), "--save", str(probe_path)]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    report = json.loads(report_path.read_text())
    assert (report["n_train"], report["n_test"], report["target"]) == (3, 3, "gold")
    assert report["components"] == 2 and report["hidden_size"] == 32  # min(64, 31, 3 - 1)
    assert report["apply_chat_template"] is False and report["model"] == "hf"
    # fixture train golds: joy; surprise+anger; none -> the other four labels never occur
    assert report["constant_labels"] == ["optimism", "admiration", "fear", "sadness"]
    for key in ("micro_f1", "macro_f1", "ece_em10", "brier"):
        assert 0.0 <= report["metrics"][key] <= 1.0
    probe = joblib.load(probe_path)
    assert isinstance(probe, Probe) and probe.label_names == tuple(report["label_names"])
    assert predict_proba(probe, np.zeros((2, 32))).shape == (2, 7)
    assert "micro_f1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metadata", "{not json"], "--metadata is not valid JSON"),
        (["--metadata", "[1]"], "Expected --metadata to be a JSON object"),
        (["--save", "probe.txt"], "Expected --save to end in .joblib or .pkl"),
        (["--components", "0"], "Expected --components >= 1"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["probe", *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_smollm2_probe_on_convabuse_fits_annotator_fractions(data_dir, smollm2_lm):
    """End to end on the real model and data (the CLI path is covered on the tiny model above;
    the shared `smollm2_lm` saves this test a second model load)."""
    task = load_task("convabuse_ml", {"data_dir": str(data_dir)})
    probe, report = run_probe(
        smollm2_lm, task, apply_chat_template=True, train_limit=16, limit=6, batch_size=8
    )
    assert (report["n_train"], report["n_test"], report["target"]) == (16, 6, "annotators")
    assert report["hidden_size"] == 576 and report["components"] == 15  # min(64, 575, 16 - 1)
    for key in ("micro_f1", "ece_em10", "brier", "align_mae", "align_bce", "align_brier"):
        assert np.isfinite(report["metrics"][key]), key
    assert len(probe.classifiers) == len(report["label_names"]) == 7
