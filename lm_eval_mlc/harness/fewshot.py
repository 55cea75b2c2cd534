"""Few-shot sampling that mixes multi-label and single-label demonstrations.

Random draws from GoEmotions' train split are ~84% single-label, so a k-shot prompt often shows
no example with two labels and the model learns to answer with one. Like the "LLMs do
multi-label classification differently" study, we draw half of the demonstrations (rounded up)
from docs with two or more labels and the rest from docs with at most one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lm_eval.api.samplers import ContextSampler

Doc = dict[str, Any]


class MixedLabelSampler(ContextSampler):
    """Draws ceil(n/2) multi-label and floor(n/2) single-label docs, in random order.

    Takes from the other pool when one runs short and never returns the evaluated doc. The two
    pools are built once per few-shot split (the train split has 43k docs).
    """

    _pools: tuple[list[Doc], list[Doc]] | None = None

    def replace_df(self, df: Sequence[Doc]) -> MixedLabelSampler:
        self._pools = None
        return super().replace_df(df)

    def _multi_and_single(self) -> tuple[list[Doc], list[Doc]]:
        if self._pools is None:
            docs = self.fewshot_docs()
            self._pools = (
                [doc for doc in docs if len(doc["labels"]) >= 2],
                [doc for doc in docs if len(doc["labels"]) < 2],
            )
        return self._pools

    def _draw(self, pool: list[Doc], k: int, eval_doc: Doc | None) -> list[Doc]:
        drawn = self.rnd.sample(pool, min(k + 1, len(pool)))
        return [doc for doc in drawn if doc != eval_doc][:k]

    def sample(
        self, n: int, eval_doc: Doc | None = None, df: Sequence[Doc] | None = None, **kwargs: Any
    ) -> list[Doc]:
        if n <= 0:
            return []
        if df:
            self.replace_df(df)
        multi, single = self._multi_and_single()
        n_multi = min((n + 1) // 2, len(multi))
        n_single = min(n - n_multi, len(single))
        n_multi = n - n_single
        chosen = self._draw(multi, n_multi, eval_doc) + self._draw(single, n_single, eval_doc)
        if len(chosen) < n:
            raise ValueError(
                f"Expected n <= {len(chosen)} few-shot examples from this split, but got n={n}."
            )
        self.rnd.shuffle(chosen)
        return chosen
