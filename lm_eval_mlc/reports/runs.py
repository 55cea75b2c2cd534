"""Reading what the harness wrote with `--output_path ... --log_samples`.

A run folder holds `<model>/results_<time>.json` and `<model>/samples_<task>_<time>.jsonl`
(one line per doc and filter). Errors name the file (and line) that is missing or broken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_mlc.core.registry import DEPRECATED_ALIASES, METRICS, METRICS_BY_NAME, STRATEGY_NAMES


def samples_file(run: str | Path, task: str) -> Path:
    """The newest samples file of `task` under a run folder (or the file itself)."""
    path = Path(run)
    if path.is_file():
        return path
    files = sorted(path.glob(f"**/samples_{task}_*.jsonl"))
    if not files:
        raise FileNotFoundError(
            f"Expected a samples file for task '{task}' under {path} "
            f"(run lm_eval with --output_path {path} --log_samples), but found none."
        )
    return files[-1]


def load_samples(
    run: str | Path, task: str, filter_name: str = "generated"
) -> list[dict[str, Any]]:
    """Logged samples of one task and filter, in doc order."""
    path = samples_file(run, task)
    samples = read_samples(path).get(filter_name)
    if not samples:
        raise ValueError(f"{path}: no samples with filter '{filter_name}'.")
    return samples


def read_samples(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every logged sample of one samples file, by filter name, each list in doc order."""
    path = Path(path)
    by_filter: dict[str, list[dict[str, Any]]] = {}
    for line_no, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}:{line_no}: not a JSON line ({err.msg}); is the file cut off?"
            ) from None
        if not isinstance(sample, dict) or "doc_id" not in sample:
            raise ValueError(f"{path}:{line_no}: not a logged sample (no 'doc_id').")
        by_filter.setdefault(sample.get("filter", "none"), []).append(sample)
    if not by_filter:
        raise ValueError(f"{path}: no samples (empty file).")
    return {name: sorted(rows, key=lambda s: s["doc_id"]) for name, rows in by_filter.items()}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read ({err}).") from None


@dataclass(frozen=True)
class RunResults:
    """One results JSON (`results_<time>.json`) and where its samples files are."""

    path: Path
    data: dict[str, Any]

    @property
    def stamp(self) -> str:
        """The `<time>` both the results file and its samples files are named with."""
        return self.path.stem.removeprefix("results_")

    @property
    def model(self) -> str:
        """A readable model name: `model_name`, else `--model_args`, else the folder name."""
        config = self.data.get("config") or {}
        args = config.get("model_args")
        name = self.data.get("model_name") or (
            args if isinstance(args, str) and args else config.get("model")
        )
        name = str(name or self.path.parent.name)
        # A local checkpoint folder reads better by its last component than its full path.
        return Path(name).name if name.startswith(("/", ".", "~")) else name

    @property
    def tasks(self) -> list[str]:
        """Tasks that have per-metric results (groups left out), sorted."""
        groups = set(self.data.get("groups") or {})
        return sorted(t for t in self.data["results"] if t not in groups)

    @property
    def limit(self) -> float | None:
        return (self.data.get("config") or {}).get("limit")

    def version(self, task: str) -> Any:
        return (self.data.get("versions") or {}).get(task)

    def n_samples(self, task: str) -> int | None:
        """Docs the task was evaluated on (`n-samples`' effective count)."""
        entry = (self.data.get("n-samples") or {}).get(task) or {}
        return entry.get("effective")

    def metrics(self, task: str) -> dict[tuple[str, str], float]:
        """`(metric, filter) -> value` from `results[task]`; stderr entries and aliases dropped.

        A run from before a metric was renamed reports only its deprecated alias (`ece`); its
        value is also given under the new name (`ece_em10`, the same number) where the run
        lacks it, so the new names work on old runs too.
        """
        out: dict[tuple[str, str], float] = {}
        for key, value in self.data["results"].get(task, {}).items():
            metric, sep, filter_name = key.partition(",")
            if not sep or metric.endswith("_stderr") or isinstance(value, str | bool):
                continue
            if isinstance(value, int | float):
                out[(metric, filter_name)] = float(value)
        for (metric, filter_name), value in list(out.items()):
            if metric in DEPRECATED_ALIASES:
                out.setdefault((DEPRECATED_ALIASES[metric], filter_name), value)
        return out

    def higher_is_better(self, task: str, metric: str) -> bool | None:
        """The direction the results JSON records, else the plugin's own, else None."""
        recorded = (self.data.get("higher_is_better") or {}).get(task, {}).get(metric)
        if isinstance(recorded, bool):
            return recorded
        return METRICS_BY_NAME[metric].higher_is_better if metric in METRICS_BY_NAME else None

    def samples_path(self, task: str) -> Path | None:
        """The samples file written with this results file, None when samples were not logged."""
        path = self.path.with_name(f"samples_{task}_{self.stamp}.jsonl")
        return path if path.is_file() else None


def load_results(path: str | Path) -> RunResults:
    """Read one results JSON; an unreadable or partial file raises ValueError naming it."""
    path = Path(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}); is the file cut off?"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ValueError(f"{path}: not an lm-eval results file (no 'results' table).")
    return RunResults(path, data)


def reported_metrics(results: list[RunResults]) -> set[str]:
    """Every metric name that some task of some run reports (under any filter)."""
    return {m for result in results for task in result.tasks for m, _ in result.metrics(task)}


def load_run(path: str | Path) -> list[RunResults]:
    """The results of a run: a results JSON itself, or the newest one in each model folder."""
    path = Path(path)
    if path.is_file():
        return [load_results(path)]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder or results file.")
    newest: dict[Path, Path] = {}
    for file in sorted(path.glob("**/results_*.json")):
        newest[file.parent] = file  # names sort by time, so the last one wins
    if not newest:
        raise FileNotFoundError(
            f"Expected a results_*.json under {path} (run lm_eval with --output_path {path}), "
            "but found none."
        )
    return [load_results(file) for file in sorted(newest.values())]


#: Strategy filters in the order the README lists them; others sort after, by name.
FILTER_ORDER: tuple[str, ...] = ("none", *STRATEGY_NAMES)


def filter_sort_key(name: str) -> tuple[int, str]:
    return (FILTER_ORDER.index(name) if name in FILTER_ORDER else len(FILTER_ORDER), name)


def metric_sort_key(name: str) -> tuple[int, str]:
    """Metrics in the order task YAMLs list them; others after, by name."""
    return (_METRIC_ORDER.get(name, len(_METRIC_ORDER)), name)


_METRIC_ORDER = {m.name: i for i, m in enumerate(METRICS)}
