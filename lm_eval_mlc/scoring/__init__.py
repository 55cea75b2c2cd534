"""Model-side scoring helpers: torch and transformers only, never lm-eval.

This layer sits between `core/` (pure Python/NumPy) and the harness adapters in `harness/`;
nothing here imports `lm_eval` (a test imports it in a fresh interpreter and checks). The text ↔
token mapping lives in `tokenization`: every place that turns a label into tokens, or tokens
into text, uses it; `label_scoring` scores every label at a step in one forward, `marginal`
searches the continuation tree, `tree_attention` runs both over one shared KV cache.
"""

from lm_eval_mlc.scoring.tokenization import (
    InContext,
    continuation_text,
    eos_token_ids,
    label_token_ids,
    label_token_ids_batch,
    split_in_context,
    token_texts,
)

__all__ = [
    "InContext",
    "continuation_text",
    "eos_token_ids",
    "label_token_ids",
    "label_token_ids_batch",
    "split_in_context",
    "token_texts",
]
