"""The label tries of one scoring call flattened into node arrays (parents before children).

Used by :mod:`lm_eval_mlc.scoring.label_scoring`: one forward over every node, then the path
log-probabilities level by level and the ending-token mass where an open sequence ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import DynamicCache

from lm_eval_mlc.core.trie import LabelTrie

if TYPE_CHECKING:
    from lm_eval_mlc.scoring.label_scoring import LabelStep


@dataclass
class _Forest:
    """Every trie of a call, flattened: node arrays in an order where parents come first."""

    tokens: np.ndarray
    parents: np.ndarray  # global node index, -1 for a root child
    depths: np.ndarray
    positions: np.ndarray
    step_of: np.ndarray  # index into `steps`
    steps: list[tuple[int, LabelStep, LabelTrie, int]]  # (kv_start, step, trie, first node)


def _forest(blocks: Sequence[tuple[int, Sequence[LabelStep]]]) -> _Forest:
    tokens, parents, depths, positions, step_of = [], [], [], [], []
    steps = []
    for kv_start, block in blocks:
        for step in block:
            trie = LabelTrie.build(step.sequences)
            offset = len(tokens)
            k = len(steps)
            steps.append((kv_start, step, trie, offset))
            tokens += trie.tokens
            parents += [p + offset if p >= 0 else -1 for p in trie.parents]
            depths += trie.depths
            positions += [step.position + d - 1 for d in trie.depths]
            step_of += [k] * len(trie)
    return _Forest(
        np.asarray(tokens, dtype=np.int64),
        np.asarray(parents, dtype=np.int64),
        np.asarray(depths, dtype=np.int64),
        np.asarray(positions, dtype=np.int64),
        np.asarray(step_of, dtype=np.int64),
        steps,
    )


def _needs_terminator(forest: _Forest) -> np.ndarray:
    """Nodes where an open (not closed) sequence ends: they need the ending-token mass."""
    needs = np.zeros(len(forest.tokens), dtype=bool)
    for _, step, trie, offset in forest.steps:
        for end, closed in zip(trie.ends, step.closed, strict=True):
            if not closed:
                needs[offset + end] = True
    return needs


def _group_by_terminators(by_step: dict[int, list[int]], forest: _Forest) -> dict[int, list[int]]:
    """Merge steps that share one terminator tensor, so each set costs one masked reduction."""
    groups: dict[int, list[int]] = {}
    first_of: dict[int, int] = {}
    for k, idx in by_step.items():
        key = id(forest.steps[k][1].terminators)
        owner = first_of.setdefault(key, k)
        groups.setdefault(owner, []).extend(idx)
    return groups


def _cumulative(forest: _Forest, cond: np.ndarray) -> np.ndarray:
    """log P(path from the step's prefix through each node), level by level."""
    cum = np.zeros_like(cond)
    for depth in range(1, int(forest.depths.max(initial=0)) + 1):
        sel = np.flatnonzero(forest.depths == depth)
        parents = forest.parents[sel]
        cum[sel] = cond[sel] + np.where(parents >= 0, cum[np.maximum(parents, 0)], 0.0)
    return cum


def _positions(cache: DynamicCache, kv_start: int) -> torch.Tensor:
    """Each cached position relative to a block's start (its prompt's first token)."""
    length = int(cache.get_seq_length())
    return (torch.arange(length) - kv_start).clamp(min=0)
