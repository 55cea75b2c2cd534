"""`calibrate`: Platt scaling and F1 thresholds fitted on validation, reported on test."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from lm_eval_mlc import metrics
from lm_eval_mlc.cli import main
from lm_eval_mlc.core.calibration import (
    Calibration,
    CalibrationInputError,
    apply_platt,
    apply_thresholds,
    fit_platt,
    fit_strategy,
    fit_thresholds,
)
from lm_eval_mlc.harness import records as harness
from lm_eval_mlc.reports.calibrate import calibrate
from lm_eval_mlc.reports.calibration_fit import fit_calibration
from lm_eval_mlc.reports.calibration_inputs import read_run

TASK = "goemotions_ml"
LABELS = ["joy", "optimism", "anger"]
STAMP = "2026-01-01T00-00-00.000000"


# --- core ------------------------------------------------------------------------------------


def _toy(seed: int, n: int = 60, n_labels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Gold labels drawn from miscalibrated probabilities (true P = p**2), with exact zeros."""
    rng = np.random.default_rng(seed)
    probs = rng.random((n, n_labels))
    probs[rng.random((n, n_labels)) < 0.1] = 0.0
    return (rng.random((n, n_labels)) < probs**2).astype(int), probs


def test_platt_matches_penalised_logistic_regression_by_scipy():
    y, p = _toy(0)
    slope, intercept = fit_platt(y, p)
    x = logit(np.clip(p, 1e-6, 1 - 1e-6))
    for j in range(y.shape[1]):
        # Log-loss + slope**2 / (2 C), C = 1, intercept unpenalised: scikit-learn's objective.
        def loss(w, j=j):
            z = w[0] * x[:, j] + w[1]
            return np.sum(np.logaddexp(0, z) - y[:, j] * z) + 0.5 * w[0] ** 2

        ref = minimize(loss, [1.0, 0.0], method="BFGS", options={"gtol": 1e-10}).x
        np.testing.assert_allclose([slope[j], intercept[j]], ref, atol=1e-5)
    assert np.all(slope > 0)  # p**2 is increasing in p


def test_platt_keeps_identity_for_constant_gold_columns():
    y, p = _toy(1)
    y[:, 0], y[:, 2] = 0, 1
    slope, intercept = fit_platt(y, p)
    assert slope[[0, 2]].tolist() == [1, 1] and intercept[[0, 2]].tolist() == [0, 0]
    calibrated = apply_platt(p, slope, intercept)
    assert np.isfinite(calibrated).all()
    np.testing.assert_allclose(calibrated[:, [0, 2]], np.clip(p[:, [0, 2]], 1e-6, 1 - 1e-6))


def test_apply_platt_hand_worked():
    # sigmoid(2 * logit(0.5) + ln 3) = 3 / 4;  sigmoid(1 * logit(0.2) + 0) = 0.2.
    out = apply_platt([[0.5, 0.2]], [2.0, 1.0], [math.log(3), 0.0])
    np.testing.assert_allclose(out, [[0.75, 0.2]])


def test_thresholds_hand_worked_with_tie_to_the_higher():
    # F1 = 2 TP / (predicted + actual positives). First label (2 positives):
    # t=0.1: 4/6, t=0.2: 2/5, t=0.3: 2/4, t=0.4: 2/3 (ties with 0.1: the higher wins).
    # Second: t=0.35 gives 4/5, better than 0.1 (4/6), 0.4 (2/4), 0.8 (2/3).
    # Third label is never on: default 0.5.
    p = np.array([[0.1, 0.1, 0.9], [0.2, 0.4, 0.1], [0.3, 0.35, 0.2], [0.4, 0.8, 0.3]])
    y = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0], [1, 1, 0]])
    np.testing.assert_allclose(fit_thresholds(y, p), [0.4, 0.35, 0.5])


def test_thresholds_match_brute_force_sklearn_f1():
    for seed in range(5):
        y, p = _toy(seed, n=40, n_labels=4)
        y[:, 3] = 0
        fitted = fit_thresholds(y, p)
        for j in range(3):
            candidates = np.unique(p[:, j])
            f1 = [f1_score(y[:, j], p[:, j] >= t, zero_division=0) for t in candidates]
            best = max(f1)
            # sklearn rounds differently; among the (near-)best the highest t wins.
            expected = max(t for t, v in zip(candidates, f1, strict=True) if v > best - 1e-12)
            assert fitted[j] == expected
            assert f1_score(y[:, j], apply_thresholds(p, fitted)[:, j]) == pytest.approx(best)
        assert fitted[3] == 0.5


def test_calibration_round_trips_and_load_names_bad_fields(tmp_path):
    y, p = _toy(2)
    fitted = fit_strategy(y, p)
    cal = Calibration(
        TASK, tuple(LABELS), "val.jsonl", "validation", ("ab", "cd"), {"joint": fitted}
    )
    path = tmp_path / "cal.json"
    cal.save(path)
    assert Calibration.load(path) == cal
    data = json.loads(path.read_text())
    assert data["format"] == "lm-eval-mlc-calibration" and data["version"] == 1
    assert data["n_validation"] == 2 and data["strategies"]["joint"]["n_validation"] == 60

    def broken(edit, match):
        doc = json.loads(path.read_text())
        edit(doc)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(doc))
        with pytest.raises(CalibrationInputError, match=match):
            Calibration.load(bad)

    broken(lambda d: d.update(version=2), r"bad\.json: expected calibration version 1")
    broken(lambda d: d.update(format="x"), r"bad\.json: not an lm-eval-mlc calibration")
    broken(
        lambda d: d["strategies"]["joint"]["thresholds"].pop(),
        r"bad\.json: strategies\.joint\.thresholds: expected 3 finite",
    )
    broken(
        lambda d: d["strategies"]["joint"]["platt"]["slope"].__setitem__(0, float("nan")),
        r"strategies\.joint\.platt\.slope",
    )
    path.write_text(path.read_text()[:50])
    with pytest.raises(CalibrationInputError, match=r"cal\.json: .*cut off"):
        Calibration.load(path)


# --- runs written in lm-eval's format --------------------------------------------------------


def _cli(*args: object) -> int:
    """Exit status of `lm-eval-mlc calibrate ARGS`."""
    with pytest.raises(SystemExit) as exit_info:
        main(["calibrate", *map(str, args)])
    return exit_info.value.code


def _write_run(
    root: Path,
    texts: list[str],
    gold: np.ndarray,
    probs: dict[str, np.ndarray],
    *,
    eval_split: str | None = "test",
    labels: list[str] = LABELS,
    annotators: np.ndarray | None = None,
) -> Path:
    """A run folder as `lm_eval --output_path root --log_samples` writes it (one model)."""
    folder = root / "model"
    folder.mkdir(parents=True)
    lines = []
    for name, matrix in probs.items():
        for i, text in enumerate(texts):
            doc = {"id": f"d{i}", "text": text, "labels": [], "label_names": labels}
            record = {
                "y_true": gold[i].tolist(),
                "y_pred": (matrix[i] >= 0.5).astype(int).tolist(),
                "probs": matrix[i].tolist(),
                "annotator_probs": [] if annotators is None else annotators[i].tolist(),
                "n_items": 1,
                "n_invalid": 0,
            }
            sample = {"doc_id": i, "doc": doc, "filter": name}
            lines.append(json.dumps(sample | dict.fromkeys(harness.METRIC_KEYS, record)))
    (folder / f"samples_{TASK}_{STAMP}.jsonl").write_text("\n".join(lines) + "\n")
    metadata = {"version": 1.0} | ({"eval_split": eval_split} if eval_split != "test" else {})
    results = {"results": {TASK: {}}, "configs": {TASK: {"metadata": metadata}}}
    (folder / f"results_{STAMP}.json").write_text(json.dumps(results))
    return root


def _split(seed: int, n: int, prefix: str) -> tuple[list[str], np.ndarray, dict]:
    y, p = _toy(seed, n=n)
    return [f"{prefix} {i}" for i in range(n)], y, {"generated": y.astype(float), "joint": p}


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    val = _write_run(tmp_path / "val", *_split(10, 80, "val"), eval_split="validation")
    test = _write_run(tmp_path / "test", *_split(11, 50, "test"))
    return val, test


def test_report_before_after_against_sklearn(runs):
    val, test = runs
    cal, report = calibrate(val, test, progress=False)
    assert list(cal.strategies) == ["joint"] and [r.strategy for r in report.rows] == ["joint"]
    assert any("generated: skipped" in note for note in report.notes)
    assert not report.warnings
    y_val, p_val = _toy(10, n=80)
    y_test, p_test = _toy(11, n=50)
    (row,) = report.rows
    assert (row.n_validation, row.n_test) == (80, 50)
    # Before: what the harness itself computes from the logged records.
    assert row.before["micro_f1"] == pytest.approx(
        f1_score(y_test, p_test >= 0.5, average="micro", zero_division=0)
    )
    assert row.before["brier"] == pytest.approx(np.mean((p_test - y_test) ** 2))
    # After: one sklearn logistic regression per label on validation, applied to test ...
    x_val, x_test = (logit(np.clip(p, 1e-6, 1 - 1e-6)) for p in (p_val, p_test))
    platt = np.column_stack(
        [
            LogisticRegression(tol=1e-10, max_iter=1000)
            .fit(x_val[:, [j]], y_val[:, j])
            .predict_proba(x_test[:, [j]])[:, 1]
            for j in range(3)
        ]
    )
    assert row.after["brier"] == pytest.approx(np.mean((platt - y_test) ** 2), abs=1e-6)
    assert row.after["ece_em10"] == pytest.approx(
        metrics.expected_calibration_error(y_test, platt), abs=1e-6
    )
    # ... and validation-best thresholds (brute force) applied to test.
    pred = np.column_stack(
        [
            p_test[:, j]
            >= max(
                np.unique(p_val[:, j]),
                key=lambda t, j=j: (round(f1_score(y_val[:, j], p_val[:, j] >= t), 12), t),
            )
            for j in range(3)
        ]
    )
    assert row.after["macro_f1"] == pytest.approx(f1_score(y_test, pred, average="macro"))
    assert row.after["brier"] < row.before["brier"]  # p is miscalibrated (true P = p**2)
    assert "align_js" not in row.before  # no annotator data in these runs


def test_alignment_reported_when_every_doc_has_annotators(tmp_path):
    texts, y, probs = _split(12, 30, "t")
    q = np.random.default_rng(0).random((30, 3))
    val = _write_run(tmp_path / "v", *_split(13, 30, "v"), eval_split="validation", annotators=q)
    test = _write_run(tmp_path / "t", texts, y, probs, annotators=q)
    (row,) = calibrate(val, test, progress=False)[1].rows
    expected = metrics.alignment_scores(probs["joint"], q)
    assert row.before["align_js"] == pytest.approx(expected["align_js"])
    assert row.before["align_mae"] == pytest.approx(expected["align_mae"])
    assert math.isfinite(row.after["align_js"]) and row.after["align_js"] != row.before["align_js"]


def test_fit_never_reads_the_test_run(runs, tmp_path):
    val, test = runs
    alone, _ = fit_calibration(read_run(val, TASK), progress=False)
    texts, y, probs = _split(99, 50, "other")  # other docs, gold and probabilities
    other = _write_run(tmp_path / "other", texts[::-1], 1 - y, {"joint": probs["joint"] ** 3})
    first, report_a = calibrate(val, test, progress=False)
    second, report_b = calibrate(val, other, progress=False)
    assert alone == first == second
    assert report_a.rows[0].before != report_b.rows[0].before  # the test runs did differ
    # Through the CLI the saved fit is byte-identical too.
    for name, run in (("a", test), ("b", other)):
        assert _cli("--validation", val, "--test", run, "--save", tmp_path / f"{name}.json") == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_guards_refuse_reporting_on_fitted_data(runs, tmp_path):
    val, test = runs
    with pytest.raises(CalibrationInputError, match="are the validation samples"):
        calibrate(val, val, progress=False)
    # Same docs, labelled as another split: refused on the docs themselves.
    texts, y, probs = _split(10, 80, "val")
    same = _write_run(tmp_path / "same", texts[:20], y[:20], {"joint": probs["joint"][:20]})
    with pytest.raises(CalibrationInputError, match=r"every test doc \(20\) is also a valid"):
        calibrate(val, same, progress=False)
    # Both runs evaluated the test split, although on different docs.
    both = _write_run(tmp_path / "both", *_split(14, 30, "val-like"))
    with pytest.raises(CalibrationInputError, match="both runs evaluated the 'test' split"):
        calibrate(both, test, progress=False)
    # Some docs shared: a warning, not an error.
    texts_t, y_t, probs_t = _split(11, 50, "test")
    texts_t[:5] = texts[:5]
    partial = _write_run(tmp_path / "partial", texts_t, y_t, probs_t)
    assert calibrate(val, partial, progress=False)[1].warnings == [
        f"5 of 50 test docs also appear in the validation run {read_run(val, TASK).path}; "
        "their scores are optimistic."
    ]
    other_labels = _write_run(tmp_path / "labels", *_split(11, 50, "x"), labels=["a", "b", "c"])
    with pytest.raises(CalibrationInputError, match=r"label sets differ: \['joy'"):
        calibrate(val, other_labels, progress=False)


def test_bad_samples_are_named(runs, tmp_path):
    val, test = runs
    path = read_run(test, TASK).path
    lines = path.read_text().splitlines()
    sample = json.loads(lines[3])
    sample["micro_f1"]["probs"] = [0.5, 1.5, 0.1]
    path.write_text("\n".join([*lines[:3], json.dumps(sample), *lines[4:]]))
    with pytest.raises(CalibrationInputError, match=rf"{path.name}: doc 3 .*'micro_f1\.probs'"):
        read_run(test, TASK)
    path.write_text("\n".join(lines)[:-30])
    with pytest.raises(ValueError, match=rf"{path.name}:{len(lines)}: .*cut off"):
        calibrate(val, test, progress=False)


def test_cli_fit_save_apply_and_exit_codes(runs, tmp_path, capsys):
    val, test = runs
    cal, report_json = tmp_path / "cal.json", tmp_path / "report.json"
    assert _cli("--validation", val, "--test", test, "--save", cal, "--output", report_json) == 0
    out = capsys.readouterr()
    assert "joint" in out.out and "micro_f1" in out.out and "generated: skipped" in out.err
    report = json.loads(report_json.read_text())
    assert report["strategies"]["joint"]["n_test"] == 50
    # Applying the saved fit reproduces the report.
    again = tmp_path / "again.json"
    assert _cli("--calibration", cal, "--test", test, "--output", again) == 0
    assert json.loads(again.read_text())["strategies"] == report["strategies"]
    assert _cli("--calibration", cal, "--test", val) == 2
    assert "are the validation samples" in capsys.readouterr().err
    assert _cli("--validation", val, "--test", test, "--strategies", "nope") == 2
    assert "expected --strategies among ['generated', 'joint']" in capsys.readouterr().err


# --- a real run ------------------------------------------------------------------------------


@pytest.mark.slow
def test_calibrate_on_real_smollm2_runs(smollm2_lm, tmp_path):
    """Validation and test runs of SmolLM2 (3 docs each), saved by lm-eval itself.

    The unary task needs log-likelihoods only (no generation), which keeps this fast; its
    P(yes) per label is a real probability, logged under the filter `none`.
    """
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    from lm_eval_mlc.harness.plugin import task_manager

    task, fixture = "goemotions_ml_unary", Path(__file__).parent / "fixtures" / "goemotions_raw"
    dirs = {}
    for split in ("validation", "test"):
        dirs[split] = tmp_path / split
        tracker = EvaluationTracker(output_path=str(dirs[split]))
        results = simple_evaluate(
            model=smollm2_lm, tasks=[task], limit=3, log_samples=True, evaluation_tracker=tracker,
            task_manager=task_manager(metadata={"data_dir": str(fixture), "eval_split": split}),
        )  # fmt: skip
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        tracker.save_results_samples(task_name=task, samples=samples[task])
    report_path, cal_path = tmp_path / "report.json", tmp_path / "cal.json"
    assert _cli("--validation", dirs["validation"], "--test", dirs["test"],
                "--output", report_path, "--save", cal_path) == 0  # fmt: skip
    report = json.loads(report_path.read_text())
    assert report["task"] == task and list(report["strategies"]) == ["none"]
    entry = report["strategies"]["none"]
    assert entry["n_validation"] == entry["n_test"] == 3
    for key in ("micro_f1", "macro_f1", "ece_em10", "brier"):
        assert math.isfinite(entry["before"][key]) and math.isfinite(entry["after"][key])
    # "Before" is what lm-eval itself reported for the test run.
    (results_file,) = dirs["test"].glob("**/results_*.json")
    logged = json.loads(results_file.read_text())["results"][task]
    assert entry["before"]["ece_em10"] == pytest.approx(logged["ece_em10,none"])
    assert logged["ece,none"] == logged["ece_em10,none"]  # the deprecated alias
    assert entry["before"]["micro_f1"] == pytest.approx(logged["micro_f1,none"])
    assert Calibration.load(cal_path).eval_split == "validation"
    # Applied to the validation run it was fitted on: refused.
    assert _cli("--calibration", cal_path, "--test", dirs["validation"]) == 2
