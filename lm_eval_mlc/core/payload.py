"""The response `hf-mlc` returns for a generation request: a versioned JSON payload.

Schema (version 1)::

    {"format": "lm-eval-mlc", "version": 1,
     "text": "<the generated answer, cut at the stop sequences, as plain `hf` returns it>",
     "labels": ["joy", ...],                       # the label set, in the task's order
     "steps": [{"token_index": 1,                 # generated token where the label starts
                "label": "joy" | null,            # null: a virtual step (no label generated)
                "probs": [...],                   # exact P(label complete) for every label
                "none": 0.1,                      # 1 - sum(probs): stop, none, or off-label
                "first_token_probs": [...],       # softmax over label first tokens (the study);
                "first_token_logits": [...],      # raw logits of those tokens (LogTokU); null
                                                  # entries: a label with no first label token
                "generated_tokens_match": true,   # the written tokens are the tokenizer's own
                                                  # split in context (null: virtual step)
                "pruned_mass": 0.0,               # probs may be lower than exact by at most
                                                  # this (spellings skipped by mlc_prune)
                "entropy_bits": 0.4, "top1": 0.9, "top1_top2_ratio": 30.0,
                "runner_up": "anger", "runner_up_later": true}],
     "strategies": {"first_step": [...], "max_over_steps": [...], "conditional": [...],
                    "joint": [...], "marginal": [...], "sampled": [...]},  # each in [0, 1]
     "marginal_unexplored": 0.02,                  # mass pruned or cut by the search (if run)
     "sampled_ci": [[0.0, 0.11], ...],             # 95 % Wilson interval per label (if run)
     "options": {"strategies": [...], "top_p": 0.99, "eps": 0.01, "max_new_tokens": 0,
                 "threshold": 0.5, "truncation": "error", "prune": 1e-4,
                 "samples": 32, "seed": 1234,
                 "case_variants": ["as_listed", "lower", "capitalized", "title", "upper"]},
     "nonfinite_steps": 0}                         # steps whose logits had NaN/inf

Plain-text responses from any other model stay plain text; `load_payload` tells them apart.
"""

from __future__ import annotations

import json
from typing import Any

FORMAT = "lm-eval-mlc"
VERSION = 1


def dump_payload(payload: dict[str, Any]) -> str:
    """Serialise with the format header first (the harness caches and logs this string)."""
    return json.dumps({"format": FORMAT, "version": VERSION, **payload}, allow_nan=False)


def load_payload(response: str) -> dict[str, Any] | None:
    """The payload in a response, or None for a plain-text response."""
    if not response.startswith('{"format": "' + FORMAT):
        return None
    payload = json.loads(response)
    if payload.get("version") != VERSION:
        raise ValueError(
            f"Expected an {FORMAT} payload of version {VERSION}, but got version "
            f"{payload.get('version')!r}; re-run without the stale cache (--use_cache)."
        )
    return payload
