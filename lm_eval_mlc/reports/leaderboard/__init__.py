"""A leaderboard over runs: one row per model x task x strategy filter, with bootstrap CIs.

`build` reads the runs and computes the rows and intervals; `render` writes them as Markdown,
CSV or HTML. The names other layers use are exported here.
"""

from lm_eval_mlc.reports.leaderboard.build import build_leaderboard
from lm_eval_mlc.reports.leaderboard.render import render, to_markdown

__all__ = ["build_leaderboard", "render", "to_markdown"]
