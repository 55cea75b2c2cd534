"""Per-step label distributions and the label-probability strategies derived from them.

Pure NumPy over what `hf-mlc` measures at each label step of a greedy generation:
`complete_logp[k, l]` = log P(label l, complete, starts at step k | the path so far),
`first_logp[k, l]` = log P(first token of l), `step_labels[k]` = the label generated there
(-1 for a virtual step: the output held no label and we scored where one would start), and
`path_logp[k]` = log P(the greedy path before step k).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lm_eval_mlc.core.registry import STEP_STRATEGIES


def entropy_bits(p: np.ndarray) -> float:
    """Shannon entropy in bits of a distribution (renormalised; zeros contribute 0)."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, None)
    total = p.sum()
    if total <= 0:
        return 0.0
    p = p[p > 0] / total
    return float(-(p * np.log2(p)).sum())


def first_token_renormalised(first_logp: np.ndarray, first_tokens: Sequence[int]) -> np.ndarray:
    """The study's estimate: softmax over the distinct first tokens of the labels.

    Labels sharing a first token get the same value, which is why it cannot tell
    "disappointment" from "disgust"; kept for fidelity with published numbers. All zeros when
    every first token has log-probability -inf: there is no mass to renormalise.
    """
    unique = {}
    for lp, token in zip(first_logp, first_tokens, strict=True):
        unique[token] = lp
    norm = np.logaddexp.reduce(np.array(list(unique.values())))
    if norm == -np.inf:
        return np.zeros(len(first_logp))
    return np.exp(np.asarray(first_logp) - norm)


def _first_token_fields(
    first_logp: np.ndarray, first_logits: np.ndarray, first_keys: np.ndarray
) -> tuple[list[float | None] | None, list[float | None] | None]:
    """`first_token_probs` and `first_token_logits` of one step; None where a label has no
    first label token (then it is absent, never a made-up constant), None if no label has."""
    has = np.asarray(first_keys) >= 0
    if not has.any():
        return None, None
    probs: list[float | None] = [None] * len(has)
    renormalised = first_token_renormalised(
        np.asarray(first_logp)[has], np.asarray(first_keys)[has]
    )
    for i, p in zip(np.flatnonzero(has), renormalised, strict=True):
        probs[i] = float(p)
    logits = [
        float(v) if h and np.isfinite(v) else None for v, h in zip(first_logits, has, strict=True)
    ]
    return probs, logits


def step_records(
    complete_logp: np.ndarray,
    first_logp: np.ndarray,
    first_logits: np.ndarray,
    first_keys: np.ndarray,
    step_labels: Sequence[int],
    token_indices: Sequence[int],
    label_names: Sequence[str],
    tokens_match: Sequence[bool | None] | None = None,
    pruned_mass: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """JSON-ready description of every step: distribution, none mass, spikiness, suppression.

    Row k of `first_logp` / `first_logits` / `first_keys` holds, per label, the log-prob of the
    path to its first label token (past any lead such as an opening quote), that token's raw
    logit (for logit-evidence rules) and a key naming the token (labels sharing it share the
    key; -1: none). `tokens_match[k]` says whether the tokens the model generated for the
    step's label are the tokenizer's own split of that text in context (None: virtual step);
    `pruned_mass[k]` bounds how much lower than exact any label's `probs` entry may be (the
    spellings that label scoring skipped; 0: exact).
    """
    records = []
    generated = [label for label in step_labels if label >= 0]
    for k, label in enumerate(step_labels):
        probs = np.exp(complete_logp[k])
        none = max(0.0, 1.0 - float(probs.sum()))
        order = np.argsort(-probs, kind="stable")
        top1, top2 = float(probs[order[0]]), float(probs[order[1]]) if len(probs) > 1 else 0.0
        runner_up = int(order[1]) if len(probs) > 1 else -1
        first_probs, first_raw = _first_token_fields(first_logp[k], first_logits[k], first_keys[k])
        records.append(
            {
                "token_index": int(token_indices[k]),
                "label": label_names[label] if label >= 0 else None,
                "probs": probs.tolist(),
                "none": none,
                "first_token_probs": first_probs,
                "first_token_logits": first_raw,
                "entropy_bits": entropy_bits(np.append(probs, none)),
                "top1": top1,
                "top1_top2_ratio": top1 / top2 if top2 > 0 else None,
                "runner_up": label_names[runner_up] if runner_up >= 0 else None,
                "runner_up_later": runner_up >= 0 and runner_up in generated[k + 1 :]
                if label >= 0
                else False,
                "generated_tokens_match": None if tokens_match is None else tokens_match[k],
                "pruned_mass": 0.0 if pruned_mass is None else float(pruned_mass[k]),
            }
        )
    return records


def step_strategies(
    complete_logp: np.ndarray, step_labels: Sequence[int], path_logp: Sequence[float], n_labels: int
) -> dict[str, list[float]]:
    """P(label) per strategy (all in [0, 1]); zeros when there is no step at all.

    first_step: the distribution at the first label step; max_over_steps: per label, the max
    over steps (the study's zero-shot estimate); conditional: P(label's tokens) where it was
    generated on the greedy path; joint: that times P(the path before it).
    """
    out = {name: np.zeros(n_labels) for name in STEP_STRATEGIES}
    if len(step_labels):
        probs = np.exp(complete_logp)
        out["first_step"] = probs[0]
        out["max_over_steps"] = probs.max(axis=0)
        for k, label in enumerate(step_labels):
            if label >= 0:
                out["conditional"][label] = max(out["conditional"][label], probs[k, label])
                joint = math.exp(path_logp[k] + complete_logp[k, label])
                out["joint"][label] = max(out["joint"][label], joint)
    return {name: np.clip(p, 0.0, 1.0).tolist() for name, p in out.items()}
