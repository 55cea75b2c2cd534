"""lm-eval filters that turn a response into one strategy's view of the label probabilities.

A task lists one filter per strategy (`generated`, `first_step`, ..., `marginal`); lm-eval then
reports every metric once per filter (`micro_f1,marginal`, `ece,max_over_steps`, ...), its own
convention for several readings of one response. A strategy the response does not carry (plain
text from `hf`, or `marginal` when it was not requested) yields None, and `process_results`
returns no metrics for it, so those rows are simply absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lm_eval.api.filter import Filter

from lm_eval_mlc.core.payload import load_payload
from lm_eval_mlc.harness.compat import filters_keep_repeats

View = dict[str, Any]


def strategy_view(response: str, strategy: str) -> View | None:
    """What `process_results` needs from a response under one strategy (None: unavailable)."""
    payload = load_payload(response)
    if payload is None:
        return {"strategy": strategy, "text": response} if strategy == "generated" else None
    view: View = {"strategy": strategy, "text": payload["text"]}
    if strategy == "generated":
        view["steps"] = payload["steps"]
        view["nonfinite_steps"] = payload.get("nonfinite_steps", 0)
        return view
    if strategy not in payload["strategies"]:
        return None
    view["probs"] = payload["strategies"][strategy]
    view["threshold"] = payload["options"]["threshold"]
    if strategy == "marginal":
        view["unexplored"] = payload["marginal_unexplored"]
    if strategy == "sampled":
        view["ci"] = payload["sampled_ci"]
    return view


class StrategyFilter(Filter):
    """Keeps the first response of each doc, seen through `strategy`."""

    def __init__(self, strategy: str = "generated", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strategy = strategy

    def apply(self, resps: Iterable[Sequence[str]], docs: Sequence[dict]) -> list[Any]:
        views = [strategy_view(r[0], self.strategy) for r in resps]
        return [[view] for view in views] if filters_keep_repeats() else views
