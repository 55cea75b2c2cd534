"""The compact summary of one run: a row per task x strategy, the handful of numbers people read.

lm-eval's own table lists every metric of every strategy filter (about 144 rows per task, the
first ones NaN for strategies that do not apply). Here each strategy is one row with micro/macro
F1, ECE (`ece_em10`), Brier, ROC-AUC, alignment and the invalid-label rate, each with its 95 %
bootstrap interval over the run's docs, and the any-place estimates' own uncertainty beside them
(the `compare` leaderboard of this one run, in strategy order). `full=True` gives lm-eval's table.
"""

from __future__ import annotations

from pathlib import Path

from lm_eval_mlc.reports.leaderboard import build_leaderboard, to_markdown
from lm_eval_mlc.reports.runs import filter_sort_key, load_run, reported_metrics

#: Columns of the compact table, in order; those a run does not report are left out.
SUMMARY_METRICS = (
    "micro_f1",
    "macro_f1",
    "ece_em10",
    "brier",
    "roc_auc_micro",
    "align_mae",
    "invalid_label_rate",
)


def summary(run: str | Path, *, full: bool = False, n_draws: int = 1000, seed: int = 0) -> str:
    """Markdown summary of a run folder or results JSON (raises like `load_run`)."""
    results = load_run(run)
    if full:
        from lm_eval.utils import make_table

        return "\n".join(make_table(result.data) for result in results)
    reported = reported_metrics(results)
    metrics = [m for m in SUMMARY_METRICS if m in reported]
    if not metrics:
        raise ValueError(
            f"{run}: the run reports none of {', '.join(SUMMARY_METRICS)} (not an lm-eval-mlc "
            "task?); use --full for lm-eval's own table."
        )
    board = build_leaderboard([run], metrics=metrics, n_draws=n_draws, seed=seed, progress=False)
    board.rows.sort(key=lambda row: (row.model, row.task, filter_sort_key(row.filter)))
    return to_markdown(board)
