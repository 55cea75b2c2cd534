"""Exact probabilities of complete labels at a generation step, for every label at once.

A label is scored as its whole token sequence followed by a token that ends it (closing quote,
delimiter, bracket or EOS), so "S1" (next token '"') and "S10" (next token '0') are told apart,
as are labels sharing a first token. All steps of a doc are scored in ONE forward pass: the
label tries of every step are appended after the doc's cached prompt and path, each node
seeing only its own step's prefix and its trie ancestors (see `tree_attention`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lm_eval_mlc.label_trie import LabelTrie
from lm_eval_mlc.models.tree_attention import tree_forward


@dataclass(frozen=True)
class LabelStep:
    """Where a label may start: the prefix is cache positions [kv_start, boundary)."""

    boundary: int
    position: int  # position id of the first label token
    prefix_logprobs: torch.Tensor  # (vocab,) log-probs of the token at `boundary`
    sequences: Sequence[Sequence[int]]  # per label: its tokens in this context
    terminators: torch.Tensor  # (vocab,) bool: tokens that end a label here


def score_label_steps(
    model: torch.nn.Module, cache: object, kv_start: int, steps: Sequence[LabelStep]
) -> tuple[np.ndarray, np.ndarray]:
    """(n_steps, n_labels) log P(label complete) and log P(label's first token), one forward.

    `cache` holds the doc's prompt and path at batch size 1; positions before `kv_start` (left
    padding) are never attended to. The cache grows by the trie nodes; callers drop it or keep
    using positions they control.
    """
    if not steps:
        return np.zeros((0, 0)), np.zeros((0, 0))
    tries = [LabelTrie.build(step.sequences) for step in steps]
    cache_len = _cache_len(cache)
    tokens: list[int] = []
    parents: list[int] = []
    positions: list[int] = []
    allowed_rows: list[torch.Tensor] = []
    offsets: list[int] = []
    for step, trie in zip(steps, tries, strict=True):
        offsets.append(len(tokens))
        row = torch.zeros(cache_len, dtype=torch.bool)
        row[kv_start : step.boundary] = True
        tokens += trie.tokens
        parents += [p + offsets[-1] if p >= 0 else -1 for p in trie.parents]
        positions += [step.position + depth - 1 for depth in trie.depths]
        allowed_rows += [row] * len(trie)
    logits, _ = tree_forward(model, cache, tokens, parents, positions, torch.stack(allowed_rows))
    node_lp = torch.log_softmax(logits, dim=-1).cpu()

    complete = np.empty((len(steps), len(steps[0].sequences)))
    first = np.empty_like(complete)
    for k, (step, trie, offset) in enumerate(zip(steps, tries, offsets, strict=True)):
        prefix_lp = step.prefix_logprobs.float().cpu()
        term = step.terminators.cpu()
        for label, (seq, end) in enumerate(zip(step.sequences, trie.ends, strict=True)):
            nodes = [offset + n for n in trie.path(end)]
            lp = prefix_lp[seq[0]].item()
            for parent_node, token in zip(nodes[:-1], seq[1:], strict=True):
                lp += node_lp[parent_node, token].item()
            lp += torch.logsumexp(node_lp[nodes[-1]][term], dim=0).item() if term.any() else -np.inf
            complete[k, label] = lp
            first[k, label] = prefix_lp[seq[0]].item()
    return complete, first


def _cache_len(cache: object) -> int:
    return 0 if cache is None else int(cache.get_seq_length())
