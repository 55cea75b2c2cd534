"""`gate`, `compare` and `plot` on one small real run (SmolLM2, hf-mlc) written like the CLI."""

import csv
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from lm_eval_mlc.cli import main
from lm_eval_mlc.harness import records as harness
from lm_eval_mlc.reports.bootstrap import _set_metric_draws, aggregation_for, bootstrap_ci
from lm_eval_mlc.reports.gate import GateInputError, gate, parse_tolerances, write_baseline
from lm_eval_mlc.reports.leaderboard.build import build_leaderboard
from lm_eval_mlc.reports.leaderboard.render import to_csv, to_html, to_markdown
from lm_eval_mlc.reports.runs import load_run, read_samples

FIXTURE = Path(__file__).parent / "fixtures" / "goemotions_raw"  # has per-rater data
TASK = "goemotions_ml"


@pytest.fixture(scope="session")
def run_dir(smollm2_lm, tmp_path_factory) -> Path:
    """`--output_path` of a 3-doc hf-mlc run, saved by lm-eval's own EvaluationTracker: every
    strategy, the marginal's search cut at 4 tokens (so most of its mass stays unexplored)."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    from lm_eval_mlc.harness.plugin import task_manager

    out = tmp_path_factory.mktemp("run") / "out"
    tracker = EvaluationTracker(output_path=str(out))
    smollm2_lm.batch_size_per_gpu = 4
    results = simple_evaluate(
        model=smollm2_lm, tasks=[TASK], limit=3, num_fewshot=2, log_samples=True,
        evaluation_tracker=tracker,
        gen_kwargs="mlc_strategies=all,mlc_samples=4,mlc_max_new_tokens=4",
        task_manager=task_manager(metadata={"data_dir": str(FIXTURE)}),
    )  # fmt: skip
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    tracker.save_results_samples(task_name=TASK, samples=samples[TASK])
    return out


def _results_file(run_dir: Path) -> Path:
    (path,) = run_dir.glob("**/results_*.json")
    return path


def _edit_samples(run_dir: Path, dest: Path, edit) -> Path:
    """A copy of the run whose every logged sample `edit(sample)` changed in place."""
    shutil.copytree(run_dir, dest)
    (path,) = dest.glob("**/samples_*.jsonl")
    samples = [json.loads(line) for line in path.read_text().splitlines()]
    for sample in samples:
        edit(sample)
    path.write_text("".join(json.dumps(sample) + "\n" for sample in samples))
    return dest


def _edit_results(run_dir: Path, dest: Path, edit) -> Path:
    """A copy of the run whose results JSON `edit(data)` changed in place."""
    shutil.copytree(run_dir, dest)
    path = _results_file(dest)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return dest


# --- runs -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_load_run_finds_results_and_samples(run_dir):
    (run,) = load_run(run_dir)
    assert run.tasks == [TASK] and run.limit == 3
    assert run.n_samples(TASK) == 3
    samples = read_samples(run.samples_path(TASK))
    assert "generated" in samples and len(samples["generated"]) == 3
    assert run.metrics(TASK)[("micro_f1", "generated")] == pytest.approx(
        harness.micro_f1([s["micro_f1"] for s in samples["generated"]])
    )


def test_broken_files_are_named(tmp_path):
    bad = tmp_path / "m" / "results_2026-01-01T00-00-00.json"
    bad.parent.mkdir()
    bad.write_text('{"results": {"t": ')
    with pytest.raises(ValueError, match=r"results_2026-01-01T00-00-00\.json.*cut off"):
        load_run(tmp_path)
    cut = tmp_path / "samples.jsonl"
    cut.write_text('{"doc_id": 0, "filter": "generated"}\n{"doc_id": 1, "fil')
    with pytest.raises(ValueError, match=r"samples\.jsonl:2"):
        read_samples(cut)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_run(tmp_path / "nowhere")


# --- bootstrap --------------------------------------------------------------------------------


def test_set_metric_fast_path_equals_the_harness_aggregation():
    rng = np.random.default_rng(3)
    for _ in range(10):
        n, n_labels = int(rng.integers(1, 10)), int(rng.integers(1, 6))
        items = [
            {"y_true": rng.integers(0, 2, n_labels).tolist(),
             "y_pred": (rng.random(n_labels) < rng.random()).astype(int).tolist()}
            for _ in range(n)
        ]  # fmt: skip
        draws = rng.integers(0, n, size=(25, n))
        for name in ("micro_f1", "macro_f1", "samples_f1", "jaccard", "exact_match",
                     "hamming_loss"):  # fmt: skip
            slow = [getattr(harness, name)([items[i] for i in d]) for d in draws]
            np.testing.assert_allclose(_set_metric_draws(name, items, draws), slow)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = list(np.random.default_rng(0).normal(size=50))
    low, high = bootstrap_ci(values, harness.nanmean, n_draws=300, seed=7)
    assert low < float(np.mean(values)) < high
    assert (low, high) == bootstrap_ci(values, harness.nanmean, n_draws=300, seed=7)
    assert all(math.isnan(v) for v in bootstrap_ci([], harness.nanmean))


def test_aggregation_is_read_from_the_task_config():
    config = {"metric_list": [{"metric": "top1_top2_ratio", "aggregation": "def nanmedian(x):"}]}
    assert aggregation_for("top1_top2_ratio", config) is harness.nanmedian
    assert aggregation_for("micro_f1", None) is harness.micro_f1
    assert aggregation_for("step_entropy", None) is harness.nanmean
    # A metric key of ours is aggregated by its own function even where the stored source text
    # is another's (lm-eval reads it from the file on disk at save time).
    stale = {"metric_list": [{"metric": "align_mae", "aggregation": "def brier(items):"}]}
    assert aggregation_for("align_mae", stale) is harness.align_mae


# --- compare ----------------------------------------------------------------------------------


def _old_run(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A run written before `ece` was renamed `ece_em10`: only `ece` in results and samples."""
    rng = np.random.default_rng(0)
    records = [
        {"y_true": rng.integers(0, 2, 3).tolist(), "y_pred": [0, 1, 0],
         "probs": rng.random(3).tolist(), "annotator_probs": [], "n_items": 1, "n_invalid": 0}
        for _ in range(12)
    ]  # fmt: skip
    folder = tmp_path / "old" / "model"
    folder.mkdir(parents=True)
    stamp = "2026-01-01T00-00-00"
    results = {
        "micro_f1,generated": harness.micro_f1(records),
        "ece,generated": harness.ece(records),
    }
    (folder / f"results_{stamp}.json").write_text(
        json.dumps({"results": {"t": results}, "n-samples": {"t": {"effective": 12}}})
    )
    lines = [
        {"doc_id": i, "filter": "generated", "micro_f1": r, "ece": r} for i, r in enumerate(records)
    ]
    (folder / f"samples_t_{stamp}.jsonl").write_text("\n".join(map(json.dumps, lines)))
    return tmp_path / "old", records


def test_an_old_run_reads_its_ece_as_ece_em10(tmp_path):
    run, records = _old_run(tmp_path)
    (result,) = load_run(run)
    assert result.metrics("t")[("ece_em10", "generated")] == harness.ece_em10(records)
    assert result.higher_is_better("t", "ece_em10") is False
    new = build_leaderboard([run], metrics=["micro_f1", "ece_em10"], n_draws=50, progress=False)
    old = build_leaderboard([run], metrics=["micro_f1", "ece"], n_draws=50, progress=False)
    ((row_new,), (row_old,)) = new.rows, old.rows
    assert row_new.values["ece_em10"] == row_old.values["ece"] == harness.ece(records)
    assert row_new.ci["ece_em10"] == row_old.ci["ece"]  # intervals from the logged `ece` items
    assert all(math.isfinite(v) for v in row_new.ci["ece_em10"])
    # The gate accepts either name against a baseline of the old run.
    baseline = tmp_path / "b.json"
    write_baseline(run, baseline)
    for name in ("ece", "ece_em10"):
        rows = gate(run, baseline, tolerances={name: 0.0}, metrics=[name])
        assert [row.metric for row in rows] == [name] and not rows[0].failed


@pytest.mark.slow
def test_compare_intervals_cover_the_logged_values(run_dir):
    metrics = ["micro_f1", "macro_f1", "ece_em10", "brier", "align_mae"]
    board = build_leaderboard([run_dir], metrics=metrics, n_draws=200, progress=False)
    (run,) = load_run(run_dir)
    assert {row.filter for row in board.rows} >= {"generated", "first_step", "max_over_steps"}
    for row in board.rows:
        for metric in metrics:
            value = row.values[metric]
            assert value == pytest.approx(run.metrics(TASK)[(metric, row.filter)], nan_ok=True)
            low, high = row.ci[metric]
            if not math.isnan(value):
                assert low - 1e-12 <= value <= high + 1e-12, (row.filter, metric)
    # Sorted best first by micro_f1 (higher is better) within the task.
    ranks = [row.values["micro_f1"] for row in board.rows]
    assert ranks == sorted(ranks, reverse=True)
    assert not board.warnings


@pytest.mark.slow
def test_compare_flags_version_and_limit_mismatch(run_dir, tmp_path, capsys):
    def edit(data):
        data["versions"][TASK] = 99.0
        data["config"]["limit"] = 2

    other = _edit_results(run_dir, tmp_path / "other", edit)
    board = build_leaderboard([run_dir, other], metrics=["micro_f1"], n_draws=50, progress=False)
    assert any("version differs" in w and "99.0" in w for w in board.warnings)
    assert any("--limit differs" in w for w in board.warnings)
    assert all(any("version" in f and "--limit" in f for f in row.flags) for row in board.rows)
    assert len({row.model for row in board.rows}) == 2  # same model, told apart by run folder
    assert "**Warnings**" in to_markdown(board) and 'class="warnings"' in to_html(board)

    out = tmp_path / "board.csv"
    argv = ["compare", str(run_dir), str(other), "--format", "csv", "--draws", "50"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(out)])
    assert exit_info.value.code == 0
    assert "version differs" in capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == len(board.rows) and {"micro_f1_ci_low", "flags"} <= set(rows[0])


@pytest.mark.slow
def test_compare_formats_and_errors(run_dir, tmp_path, capsys):
    board = build_leaderboard([run_dir], metrics=["micro_f1", "ece"], n_draws=50, progress=False)
    md = to_markdown(board)
    assert md.splitlines()[0] == "| model | task | filter | n | micro_f1 | ece | estimate | flags |"
    assert len(md.splitlines()) >= 2 + len(board.rows)
    page = to_html(board)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "src=" not in page
    assert to_csv(board).count("\n") == 1 + len(board.rows)
    for bad in (["--metrics", "no_such_metric"], ["--sort", "brier"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["compare", str(run_dir), *bad])
        assert exit_info.value.code == 2
    assert "no_such_metric" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_shows_the_any_place_estimates_uncertainty(run_dir):
    """`marginal` rows say they are a lower bound and by how much (flagged when most mass is
    unexplored); `sampled` rows carry their interval width; the values are the run's own."""
    board = build_leaderboard([run_dir], metrics=["micro_f1"], n_draws=20, progress=False)
    (run,) = load_run(run_dir)
    reported = run.metrics(TASK)
    by_filter = {row.filter: row for row in board.rows}
    unexplored = reported[("marginal_unexplored", "marginal")]
    width = reported[("sampled_ci_width", "sampled")]
    assert 0 < width < 1 and 0 <= unexplored <= 1
    md = to_markdown(board)
    assert f"lower bound, unexplored {unexplored:.3f}" in md
    assert f"sampled, 95% CI width {width:.3f}" in md
    assert "estimate: `marginal` is a lower bound" in md
    flagged = any("lower bound" in f for f in by_filter["marginal"].flags)
    assert flagged == (unexplored >= 0.5)
    assert not by_filter["generated"].flags
    rows = {r["filter"]: r for r in csv.DictReader(io.StringIO(to_csv(board)))}
    assert float(rows["marginal"]["marginal_unexplored"]) == pytest.approx(unexplored)
    assert float(rows["sampled"]["sampled_ci_width"]) == pytest.approx(width)
    assert rows["sampled"]["marginal_unexplored"] == rows["generated"]["sampled_ci_width"] == ""
    assert "lower bound, unexplored" in to_html(board)


@pytest.mark.slow
def test_show_prints_one_row_per_strategy_and_full_gives_the_harness_table(run_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["show", str(run_dir), "--draws", "50"])
    assert exit_info.value.code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    metrics = ["micro_f1", "macro_f1", "ece_em10", "brier", "roc_auc_micro", "align_mae",
               "invalid_label_rate"]  # fmt: skip
    assert head == ["model", "task", "filter", "n", *metrics, "estimate", "flags"]
    (run,) = load_run(run_dir)
    reported = run.metrics(TASK)
    strategies = ["generated", "first_step", "max_over_steps", "conditional", "joint",
                  "marginal", "sampled"]  # fmt: skip
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]
    assert [row[2] for row in rows] == strategies  # every strategy once, in strategy order
    for row in rows:
        value = float(row[4].split(" [")[0])
        assert value == pytest.approx(reported[("micro_f1", row[2])], abs=5e-4)
        if row[2] == "generated":
            assert "[" in row[4]  # a bootstrap interval beside the value
    with pytest.raises(SystemExit) as exit_info:
        main(["show", str(run_dir), "--full"])
    assert exit_info.value.code == 0
    full = capsys.readouterr().out
    assert "marginal_unexplored" in full and full.count("\n") > 5 * len(rows)


# --- gate -------------------------------------------------------------------------------------


def test_parse_tolerances():
    assert parse_tolerances("micro_f1=0.02,ece,marginal=0.01") == {
        "micro_f1": 0.02,
        "ece,marginal": 0.01,
    }
    for bad in ("micro_f1", "micro_f1=-1", "micro_f1=x"):
        with pytest.raises(GateInputError, match="--tolerance"):
            parse_tolerances(bad)


@pytest.mark.slow
def test_gate_passes_on_its_own_baseline_and_fails_on_a_better_one(run_dir, tmp_path, capsys):
    baseline = tmp_path / "b.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["gate", str(run_dir), "--write-baseline", str(baseline)])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["gate", str(run_dir), "--baseline", str(baseline)])
    assert exit_info.value.code == 0
    assert "PASS" in capsys.readouterr().out

    # A baseline 0.1 better on micro_f1 and ece: a regression beyond 0.05, not beyond 0.2.
    data = json.loads(baseline.read_text())
    metrics = data["tasks"][TASK]["metrics"]
    metrics["micro_f1,generated"]["value"] += 0.1
    metrics["ece,generated"]["value"] -= 0.1
    baseline.write_text(json.dumps(data))
    with pytest.raises(SystemExit) as exit_info:
        main(["gate", str(run_dir), "--baseline", str(baseline), "--tolerance", "micro_f1=0.05"])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    regressed = [line.split()[1:3] for line in out.splitlines() if line.endswith("REGRESSED")]
    assert sorted(regressed) == [["ece", "generated"], ["micro_f1", "generated"]]
    rows = gate(run_dir, baseline, tolerances={"micro_f1": 0.2, "ece": 0.2})
    assert not any(row.failed for row in rows)


@pytest.mark.slow
def test_gate_bad_input_exits_2(run_dir, tmp_path, capsys):
    baseline = tmp_path / "b.json"
    write_baseline(run_dir, baseline)
    other = _edit_results(run_dir, tmp_path / "v2", lambda d: d["versions"].update({TASK: 2.0}))
    cut = tmp_path / "cut.json"
    cut.write_text(baseline.read_text()[:100])
    cases = [
        ["gate", str(other), "--baseline", str(baseline)],  # task version changed
        ["gate", str(run_dir), "--baseline", str(cut)],  # partial baseline
        ["gate", str(run_dir), "--baseline", str(tmp_path / "missing.json")],
        ["gate", str(run_dir), "--baseline", str(baseline), "--tolerance", "micro_f=0.1"],
    ]
    named = ["v2", "cut.json", "missing.json", "micro_f"]
    for argv, name in zip(cases, named, strict=True):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("lm-eval-mlc gate: error:") and err.count("\n") == 1, err
        assert name in err
    with pytest.raises(SystemExit) as exit_info:
        main(["gate", str(other), "--baseline", str(baseline), "--allow-mismatch"])
    assert exit_info.value.code == 0


# --- plot -------------------------------------------------------------------------------------


def _non_trivial_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.stat().st_size > 10_000, path
    pixels = imread(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    # Real content: many distinct colours, and not mostly one value.
    flat = pixels[..., :3].reshape(-1, 3)
    assert len(np.unique(flat[:: max(1, len(flat) // 50_000)], axis=0)) > 20, path
    assert pixels[..., :3].std() > 0.05, path


@pytest.mark.slow
def test_plot_writes_every_figure(run_dir, tmp_path):
    out = tmp_path / "figures"
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(run_dir), "--out", str(out), "--task", TASK])
    assert exit_info.value.code == 0
    (run,) = load_run(run_dir)
    samples = read_samples(run.samples_path(TASK))["generated"]
    # The fixture has raters and every strategy.
    kinds = ["reliability", "per_label_f1", "annotator_scatter", "any_place"]
    if any(json.loads(s["resps"][0][0])["steps"] for s in samples):
        kinds += ["step_distributions", "step_uncertainty"]
    for kind in kinds:
        _non_trivial_png(out / f"{TASK}_{kind}.png")
        svg = (out / f"{TASK}_{kind}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
        assert TASK in svg  # titles are text, not paths
    assert not list(out.glob(".tmp-*"))  # atomic writes leave no temporary files
    # The any-place figure states the harness' own aggregate of the marginal's unexplored mass.
    unexplored = run.metrics(TASK)[("marginal_unexplored", "marginal")]
    svg = (out / f"{TASK}_any_place.svg").read_text()
    assert f"mean unexplored {unexplored:.3f}" in svg and "Wilson" in svg


@pytest.mark.slow
def test_plot_skips_the_scatter_without_annotators(run_dir, tmp_path):
    from lm_eval_mlc.reports.plots import plot_run

    def no_raters(sample):
        for value in sample.values():
            if isinstance(value, dict) and "annotator_probs" in value:
                value["annotator_probs"] = []

    copy = _edit_samples(run_dir, tmp_path / "no_raters", no_raters)
    report = plot_run(copy, out=tmp_path / "figs")
    assert any("annotator_scatter skipped" in note for note in report.notes)
    assert not (tmp_path / "figs" / f"{TASK}_annotator_scatter.png").exists()
    assert (tmp_path / "figs" / f"{TASK}_reliability.png").is_file()


@pytest.mark.slow
def test_plot_skips_the_any_place_figure_without_those_strategies(run_dir, tmp_path):
    from lm_eval_mlc.reports.plots import plot_run

    def no_any_place(sample):
        payload = json.loads(sample["resps"][0][0])
        for key in ("marginal", "sampled"):
            payload["strategies"].pop(key)
        sample["resps"] = [[json.dumps(payload)]]
        sample["filtered_resps"] = [json.dumps(payload)]

    copy = _edit_samples(run_dir, tmp_path / "no_marginal", no_any_place)
    report = plot_run(copy, out=tmp_path / "figs")
    assert any("any_place skipped" in note and "marginal" in note for note in report.notes)
    assert not (tmp_path / "figs" / f"{TASK}_any_place.png").exists()


def test_plot_names_a_broken_samples_file(tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "results_T1.json").write_text(json.dumps({"results": {TASK: {}}}))
    (folder / f"samples_{TASK}_T1.jsonl").write_text('{"doc_id": 0, "doc": {"lab')
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"samples_{TASK}_T1.jsonl:1" in err and err.count("\n") == 1


def test_label_colors_are_keyed_by_name():
    from lm_eval_mlc.reports.plots.style import label_colors

    names = [f"label{i}" for i in range(28)]
    colors = label_colors(names)
    assert len(set(colors.values())) == 28
    assert label_colors(names)["label5"] == colors["label5"]
