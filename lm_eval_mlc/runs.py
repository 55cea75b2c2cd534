"""Reading what the harness wrote with `--output_path ... --log_samples`.

A run folder holds `<model>/results_<time>.json` and `<model>/samples_<task>_<time>.jsonl`
(one line per doc and filter). Errors name the file (and line) that is missing or broken.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
    samples = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}:{line_no}: not a JSON line ({err.msg}); is the file cut off?"
            ) from None
        if sample.get("filter", filter_name) == filter_name:
            samples.append(sample)
    if not samples:
        raise ValueError(f"{path}: no samples with filter '{filter_name}'.")
    return sorted(samples, key=lambda s: s["doc_id"])
