"""Exact probabilities of complete labels at a generation step, for every label at once.

A label is scored as its whole token sequence followed by a token that ends it (closing quote,
delimiter, bracket or EOS), so "S1" (next token '"') and "S10" (next token '0') are told apart,
as are labels sharing a first token. All steps of a doc are scored in ONE forward pass: the
label tries of every step are appended after the doc's cached prompt and path, each node
seeing only its own step's prefix and its trie ancestors (see `tree_attention`); the docs of a
generation batch share that one forward (`score_label_steps_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from transformers import DynamicCache

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
    return _score_blocks(model, cache, [(kv_start, steps)])[0]


#: Trie tokens one joined forward may carry (its logits are nodes x vocabulary floats: 512 x
#: 128k x 4 bytes = 256 MiB); docs past it go to the next forward, a bigger doc alone.
MAX_JOINED_NODES = 512


def score_label_steps_rows(
    model: torch.nn.Module,
    cache: DynamicCache,
    pads: Sequence[int],
    steps_per_row: Sequence[Sequence[LabelStep]],
    max_nodes: int = MAX_JOINED_NODES,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`score_label_steps` for every doc of a generation batch, in as few forwards as fit.

    `cache` is the batch's generation cache (row r left-padded by `pads[r]`; step boundaries in
    those padded coordinates). The rows' cached prefixes, padding dropped, are joined along the
    sequence axis into one batch-size-1 cache, and every row's tries attend only to their own
    block (a block-diagonal tree mask; position ids are the rows' own, and cached keys already
    carry theirs). Rows are grouped up to `max_nodes` trie tokens per forward, so a batch
    usually costs one forward instead of one per doc; the generation cache is left as it was.
    """
    empty = (np.zeros((0, 0)), np.zeros((0, 0)))
    results = [empty] * len(steps_per_row)
    groups: list[list[int]] = []
    size = 0
    for r, steps in enumerate(steps_per_row):
        if not steps:
            continue
        nodes = sum(len(seq) for step in steps for seq in step.sequences)  # trie size bound
        if not groups or size + nodes > max_nodes:
            groups.append([])
            size = 0
        groups[-1].append(r)
        size += nodes
    for group in groups:
        joined, blocks = _join_rows(cache, pads, steps_per_row, group)
        for r, result in zip(group, _score_blocks(model, joined, blocks), strict=True):
            results[r] = result
    return results


def _join_rows(
    cache: DynamicCache,
    pads: Sequence[int],
    steps_per_row: Sequence[Sequence[LabelStep]],
    rows: Sequence[int],
) -> tuple[DynamicCache, list[tuple[int, list[LabelStep]]]]:
    """One batch-size-1 cache of `rows`' attended prefixes, and their steps moved into it."""
    spans = [(r, pads[r], max(step.boundary for step in steps_per_row[r])) for r in rows]
    check_full_cache(cache, max(end for _, _, end in spans))
    joined = DynamicCache()
    for layer_idx, layer in enumerate(cache.layers):
        keys = torch.cat([layer.keys[r : r + 1, :, a:b] for r, a, b in spans], dim=2)
        values = torch.cat([layer.values[r : r + 1, :, a:b] for r, a, b in spans], dim=2)
        joined.update(keys, values, layer_idx)
    blocks, offset = [], 0
    for r, start, end in spans:
        moved = [
            replace(step, boundary=step.boundary - start + offset) for step in steps_per_row[r]
        ]
        blocks.append((offset, moved))
        offset += end - start
    return joined, blocks


def check_full_cache(cache: object, length: int) -> None:
    """Raise unless every layer of `cache` holds keys for all of its first `length` positions.

    Sliding-window layers past their window and recurrent (Mamba-style) layers do not; slicing
    them by position would silently score labels against the wrong context.
    """
    for i, layer in enumerate(getattr(cache, "layers", None) or []):
        keys = getattr(layer, "keys", None)
        if not isinstance(keys, torch.Tensor) or keys.shape[-2] < length:
            raise NotImplementedError(
                f"hf-mlc: cache layer {i} ({type(layer).__name__}) does not hold all {length} "
                "positions (a sliding-window layer past its window, or a recurrent layer); label "
                "scoring needs full-attention caches. Shorten the prompt below the window, or "
                "evaluate this model with `hf` (generated labels only)."
            )


def _score_blocks(
    model: torch.nn.Module, cache: object, blocks: Sequence[tuple[int, Sequence[LabelStep]]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One forward over the tries of every step of every block; a block's steps see cache
    positions [kv_start, boundary) and their own trie ancestors only."""
    cache_len = _cache_len(cache)
    tokens: list[int] = []
    parents: list[int] = []
    positions: list[int] = []
    allowed_rows: list[torch.Tensor] = []
    placed: list[list[tuple[LabelStep, LabelTrie, int]]] = []
    for kv_start, steps in blocks:
        placed.append([])
        for step in steps:
            trie = LabelTrie.build(step.sequences)
            offset = len(tokens)
            row = torch.zeros(cache_len, dtype=torch.bool)
            row[kv_start : step.boundary] = True
            tokens += trie.tokens
            parents += [p + offset if p >= 0 else -1 for p in trie.parents]
            positions += [step.position + depth - 1 for depth in trie.depths]
            allowed_rows += [row] * len(trie)
            placed[-1].append((step, trie, offset))
    logits, _ = tree_forward(model, cache, tokens, parents, positions, torch.stack(allowed_rows))
    node_lp = torch.log_softmax(logits, dim=-1).cpu()
    return [_read_block(block, node_lp) for block in placed]


def _read_block(
    placed: Sequence[tuple[LabelStep, LabelTrie, int]], node_lp: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """(complete, first) log-probabilities of one block's steps from the scored trie nodes."""
    complete = np.empty((len(placed), len(placed[0][0].sequences)))
    first = np.empty_like(complete)
    for k, (step, trie, offset) in enumerate(placed):
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
