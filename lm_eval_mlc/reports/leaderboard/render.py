"""Rendering a leaderboard as Markdown, CSV or a self-contained HTML page.

The any-place estimates carry their own uncertainty in an `estimate` column: `marginal` is a
lower bound short by at most its mean `marginal_unexplored`, `sampled` a sample share with its
mean 95 % Wilson interval width (`sampled_ci_width`).
"""

from __future__ import annotations

import csv
import html
import io
import math
from typing import Literal

from lm_eval_mlc.core.registry import ESTIMATE_QUALITY
from lm_eval_mlc.reports.leaderboard.build import Leaderboard, Row

Format = Literal["md", "csv", "html"]
FORMATS: tuple[str, ...] = ("md", "csv", "html")


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.3f}"


def _cell(row: Row, metric: str) -> str:
    value = _fmt(row.values[metric])
    low, high = row.ci.get(metric, (math.nan, math.nan))
    if math.isnan(low):
        return value
    return f"{value} [{_fmt(low)}, {_fmt(high)}]"


def _estimate(row: Row) -> str:
    """The any-place estimate's own uncertainty, in words ("" for other filters)."""
    if math.isnan(row.quality):
        return ""
    if row.filter == "marginal":
        return f"lower bound, unexplored {_fmt(row.quality)}"
    return f"sampled, 95% CI width {_fmt(row.quality)}"


def _has_estimates(board: Leaderboard) -> bool:
    return any(not math.isnan(row.quality) for row in board.rows)


def _header(board: Leaderboard) -> list[str]:
    return ["model", "task", "filter", "n", *board.metrics, "estimate", "flags"]


def _cells(board: Leaderboard, row: Row) -> list[str]:
    n = "" if row.n_docs is None else str(row.n_docs)
    metrics = [_cell(row, m) for m in board.metrics]
    return [row.model, row.task, row.filter, n, *metrics, _estimate(row), "; ".join(row.flags)]


def to_markdown(board: Leaderboard) -> str:
    """A Markdown table, its interval and estimate notes, and the warnings as a list."""
    head = _header(board)
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" if h == "n" or h in board.metrics else "---" for h in head) + "|",
    ]
    for row in board.rows:
        cells = [c.replace("|", "\\|") for c in _cells(board, row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Values with {board.level:.0%} bootstrap intervals over docs in brackets.")
    if _has_estimates(board):
        lines.append(ESTIMATE_NOTE)
    if board.warnings:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in board.warnings]
    return "\n".join(lines) + "\n"


ESTIMATE_NOTE = (
    "estimate: `marginal` is a lower bound on P(label anywhere in the answer); the truth lies "
    "at most `unexplored` (the mean mass the tree search left unexplored) above each label's "
    "probability. `sampled` is the share of sampled answers naming the label, unbiased, with "
    "the mean width of its per-doc 95% Wilson intervals."
)


def to_csv(board: Leaderboard) -> str:
    """One column per metric plus `<metric>_ci_low` / `<metric>_ci_high`, full precision, and
    the any-place estimates' `marginal_unexplored` / `sampled_ci_width` (empty elsewhere)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metric_cols = [c for m in board.metrics for c in (m, f"{m}_ci_low", f"{m}_ci_high")]
    quality_cols = list(ESTIMATE_QUALITY.values())
    writer.writerow(["model", "task", "filter", "n", *metric_cols, *quality_cols, "flags"])
    for row in board.rows:
        values = []
        for metric in board.metrics:
            low, high = row.ci.get(metric, (math.nan, math.nan))
            values += [_csv_num(row.values[metric]), _csv_num(low), _csv_num(high)]
        n = "" if row.n_docs is None else row.n_docs
        quality = [
            _csv_num(row.quality if ESTIMATE_QUALITY.get(row.filter) == col else math.nan)
            for col in quality_cols
        ]
        flags = "; ".join(row.flags)
        writer.writerow([row.model, row.task, row.filter, n, *values, *quality, flags])
    return buffer.getvalue()


def _csv_num(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td .ci { color: #777; font-size: 12px; }
tr.flagged td { background: #fff6e0; }
.warnings { background: #fff6e0; border-left: 4px solid #e0a000; padding: .5em 1em; }
"""


def to_html(board: Leaderboard) -> str:
    """A self-contained page (inline CSS, no scripts or external files)."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in _header(board))
    body = []
    for row in board.rows:
        cells = [f"<td>{esc(row.model)}</td>", f"<td>{esc(row.task)}</td>"]
        cells.append(f"<td>{esc(row.filter)}</td>")
        cells.append(f'<td class="num">{"" if row.n_docs is None else row.n_docs}</td>')
        for metric in board.metrics:
            low, high = row.ci.get(metric, (math.nan, math.nan))
            ci = "" if math.isnan(low) else f' <span class="ci">[{_fmt(low)}, {_fmt(high)}]</span>'
            cells.append(f'<td class="num">{_fmt(row.values[metric])}{ci}</td>')
        cells.append(f"<td>{esc(_estimate(row))}</td>")
        cells.append(f"<td>{esc('; '.join(row.flags))}</td>")
        css = ' class="flagged"' if row.flags else ""
        body.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    note = f"<p>{esc(ESTIMATE_NOTE)}</p>" if _has_estimates(board) else ""
    warnings = ""
    if board.warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in board.warnings)
        warnings = f'<div class="warnings"><strong>Warnings</strong><ul>{items}</ul></div>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>lm-eval-mlc leaderboard</title><style>{_CSS}</style></head><body>"
        "<h1>lm-eval-mlc leaderboard</h1>"
        f"<p>Values with {board.level:.0%} bootstrap intervals over docs in brackets.</p>"
        f"{note}<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"{warnings}</body></html>\n"
    )


def render(board: Leaderboard, fmt: Format) -> str:
    """`board` in the format `fmt` names (one of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"Expected `format` to be one of {FORMATS}, but got '{fmt}'.")
    return {"md": to_markdown, "csv": to_csv, "html": to_html}[fmt](board)
