"""What `hf-mlc` keeps per generated answer, and the small tensor/text helpers its steps use."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from lm_eval.api.instance import Instance
from transformers import DynamicCache

from lm_eval_mlc.core.matching import LabelSpan
from lm_eval_mlc.scoring.label_scoring import (
    LabelStep,
    check_full_cache,
)


@dataclass
class _Prepared:
    """One answer's label steps, before the batch's label-scoring forward."""

    text: str
    label_names: list[str]
    pad: int  # left padding of its row in the generation batch
    nonfinite: int  # generated tokens whose logits had NaN/inf
    root_logprobs: torch.Tensor | None  # first generated token's log-probs (marginal search)
    steps: list[LabelStep] = field(default_factory=list)
    step_labels: list[int] = field(default_factory=list)
    token_indices: list[int] = field(default_factory=list)
    path_logp: list[float] = field(default_factory=list)
    tokens_match: list[bool | None] = field(default_factory=list)
    pruned: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Answer:
    """A generated row read as `hf` reads it, plus where its label steps may lie."""

    text: str  # exactly what `hf` returns
    internal: str  # the tokens' text as it reads after the prompt, special tokens kept
    offsets: list[int]  # offsets[i]: where token i starts in `internal` (len n_tokens + 1)
    region: tuple[int, int]  # [start, end) of the answer in `internal` (after thinking, cut)
    n_tokens: int  # tokens that the answer region needs


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with `prefix` (a summary replaces them)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _label_names(request: Instance) -> list[str] | None:
    """The label set the doc of a request carries (None: not a multi-label request)."""
    doc = request.doc
    return doc.get("label_names") if isinstance(doc, dict) else None


def _logprobs(logits: torch.Tensor) -> torch.Tensor:
    """log-softmax of one position's logits, NaN read as -inf (no mass)."""
    return torch.nan_to_num(torch.log_softmax(logits.float(), dim=-1), nan=-torch.inf)


def _first_depth(ids: Sequence[int], lead: str, token_text: Sequence[str]) -> int:
    """1-based index of the first token of `ids` that holds label characters past `lead`."""
    length = 0
    for depth, token in enumerate(ids, start=1):
        length += len(token_text[token]) if token < len(token_text) else 0
        if length > len(lead):
            return depth
    return 0


def _virtual_span(region: str, start: int) -> list[LabelSpan]:
    """Where a first label would have started when none was generated (after '['), if any."""
    bracket = region.find("[")
    return [LabelSpan(start + bracket + 1, start + bracket + 1, -1, '"')] if bracket >= 0 else []


def _row_cache(cache: DynamicCache, row: int, batch: int) -> DynamicCache:
    """Batch-size-1 copy of one row of a generation cache (the cache itself when batch is 1)."""
    check_full_cache(cache, int(cache.get_seq_length()))
    if batch == 1:
        return cache
    single = DynamicCache()
    for layer_idx, layer in enumerate(cache.layers):
        single.update(layer.keys[row : row + 1], layer.values[row : row + 1], layer_idx)
    return single
