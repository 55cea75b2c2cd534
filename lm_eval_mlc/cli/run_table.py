"""The end of `lm-eval-mlc run`: the compact summary of `lm-eval-mlc show` for lm-eval's table.

lm-eval's CLI imports `lm_eval.utils.make_table` when it runs and prints `make_table(results)`
(every metric of every strategy filter: about 144 rows per task), then, with groups,
`make_table(results, "groups")`. Inside `compact_tables()` that name is ours, in this process
only: the "results" table is `summary()` of the run written to a temporary folder (the results
JSON, and the samples when the run logged them, which lm-eval pops from `results` before it
prints, so `simple_evaluate` is wrapped to keep them), the "groups" table is lm-eval's own over
the summary metrics. Results that are not ours (no summary metric) get lm-eval's table.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from lm_eval_mlc.reports.runs import RunResults, reported_metrics
from lm_eval_mlc.reports.summary import SUMMARY_METRICS, summary

NO_SAMPLES = "No intervals: the run did not log its samples (add --log_samples for them)."


def _metric(key: str) -> str | None:
    """`micro_f1` of `micro_f1,generated` and of `micro_f1_stderr,generated`; None for `alias`."""
    metric, sep, _ = key.partition(",")
    return metric.removesuffix("_stderr") if sep else None


def is_ours(results: dict[str, Any]) -> bool:
    """Whether some task of `results` reports a metric of the compact summary."""
    if not isinstance(results.get("results"), dict):
        return False
    return bool(set(SUMMARY_METRICS) & reported_metrics([RunResults(Path(), results)]))


class CompactTable:
    """Stands in for `lm_eval.utils.make_table` (same signature) at the end of a run."""

    def __init__(
        self, make_table: Callable[..., str], output_path: str | None = None, n_draws: int = 1000
    ) -> None:
        self.make_table = make_table
        self.output_path = output_path
        self.n_draws = n_draws
        self.samples: dict[str, list[dict[str, Any]]] | None = None
        self.model_name: str | None = None
        self.compact = True  # False once the results table fell back to lm-eval's

    def capture(self, results: Any, evaluation_tracker: Any = None) -> None:
        """Keep what the CLI drops before it prints: the samples and the model's name."""
        if isinstance(results, dict) and isinstance(results.get("samples"), dict):
            self.samples = results["samples"]
        config = getattr(evaluation_tracker, "general_config_tracker", None)
        self.model_name = getattr(config, "model_name", None) or None

    def __call__(
        self, result_dict: dict[str, Any], column: str = "results", sort_results: bool = False
    ) -> str:
        if column == "groups":
            if not self.compact:
                return self.make_table(result_dict, column, sort_results)
            return self.make_table(summary_groups(result_dict), column, sort_results)
        self.compact = column == "results" and is_ours(result_dict)
        if not self.compact:
            return self.make_table(result_dict, column, sort_results)
        try:
            return self.summary(result_dict)
        except Exception as err:  # noqa: BLE001 - the run is done; never lose its table
            self.compact = False
            print(
                f"lm-eval-mlc run: note: no compact summary ({type(err).__name__}: {err}); "
                "lm-eval's table follows.",
                file=sys.stderr,
            )
            return self.make_table(result_dict, column, sort_results)

    def summary(self, result_dict: dict[str, Any]) -> str:
        """`summary()` of `result_dict` (and the captured samples) written as a run folder."""
        from lm_eval.utils import handle_non_serializable

        def dumps(value: Any, **kwargs: Any) -> str:
            return json.dumps(value, default=handle_non_serializable, ensure_ascii=False, **kwargs)

        samples = self.samples or result_dict.get("samples") or {}
        data = {key: value for key, value in result_dict.items() if key != "samples"}
        if self.model_name and not data.get("model_name"):
            data["model_name"] = self.model_name
        stamp = datetime.now().isoformat().replace(":", "-")
        with tempfile.TemporaryDirectory(prefix="lm-eval-mlc-run-") as tmp:
            folder = Path(tmp)
            (folder / f"results_{stamp}.json").write_text(dumps(data, indent=2), encoding="utf-8")
            for task, rows in samples.items():
                with open(folder / f"samples_{task}_{stamp}.jsonl", "w", encoding="utf-8") as f:
                    f.writelines(dumps(row) + "\n" for row in rows)
            table = summary(folder, n_draws=self.n_draws)
        if not samples:  # the warnings name the temporary folder; one line says it instead
            table = _without_warnings(table, tmp) + NO_SAMPLES + "\n"
        return table.rstrip("\n") + "\n" + self.hint()

    def hint(self) -> str:
        if self.output_path:
            return (
                f"lm-eval's full table: lm-eval-mlc show {self.output_path} --full "
                "(or run with --full_table)."
            )
        return (
            "lm-eval's full table: run with --full_table (or with --output_path OUT, then "
            "lm-eval-mlc show OUT --full)."
        )


def _without_warnings(table: str, folder: str) -> str:
    """`table` less the warning lines naming `folder`, and the heading of an emptied list."""
    lines = [line for line in table.splitlines() if folder not in line]
    while lines and lines[-1].strip() in ("", "**Warnings**"):
        lines.pop()
    return "\n".join(lines) + "\n"


def summary_groups(result_dict: dict[str, Any]) -> dict[str, Any]:
    """A copy of `result_dict` whose group rows keep only the summary metrics (and stderr).

    A group reporting none of them keeps every row.
    """
    groups = {}
    for name, entry in (result_dict.get("groups") or {}).items():
        kept = {k: v for k, v in entry.items() if _metric(k) in (None, *SUMMARY_METRICS)}
        groups[name] = kept if any(_metric(k) for k in kept) else entry
    return {**result_dict, "groups": groups}


@contextmanager
def compact_tables(output_path: str | None = None, n_draws: int = 1000) -> Iterator[CompactTable]:
    """Within the block, lm-eval's CLI prints the compact summary instead of its full table."""
    import lm_eval
    from lm_eval import utils

    make_table = utils.make_table
    had_evaluate = "simple_evaluate" in vars(lm_eval)  # else a lazy attribute of the package
    simple_evaluate = lm_eval.simple_evaluate
    table = CompactTable(make_table, output_path, n_draws)

    def evaluate(*args: Any, **kwargs: Any) -> Any:
        results = simple_evaluate(*args, **kwargs)
        table.capture(results, kwargs.get("evaluation_tracker"))
        return results

    utils.make_table = table
    lm_eval.simple_evaluate = evaluate
    try:
        yield table
    finally:
        utils.make_table = make_table
        if had_evaluate:
            lm_eval.simple_evaluate = simple_evaluate
        else:
            vars(lm_eval).pop("simple_evaluate", None)
