"""Exact probabilities of complete labels at a generation step, for every label at once.

A label is scored as a set of token sequences (its spellings in context: the tokens the model
generated for it, and its case variants as the tokenizer splits them after the step's prefix),
each followed by a token that ends it (closing quote, delimiter, bracket or EOS); P(label) is
the sum over its distinct sequences. So "S1" (next token '"') and "S10" (next token '0') are
told apart, as are labels sharing a first token.

All steps of all docs of a generation batch are scored together: the label tries of every step
are appended after the docs' cached prefixes (joined into one batch-size-1 cache), each node
seeing only its own step's prefix and its trie ancestors (see `tree_attention`). The nodes go
through the model in chunks of at most `max_nodes`, so the (nodes x vocabulary) logits stay
bounded however many labels there are; a node's ancestors in earlier chunks are read from the
cache. Reading the scores is vectorised: one gather per chunk, no per-label Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from transformers import DynamicCache

from lm_eval_mlc.scoring._forest import (
    _cumulative,
    _Forest,
    _forest,
    _group_by_terminators,
    _needs_terminator,
    _positions,
)
from lm_eval_mlc.scoring.tree_attention import tree_forward


@dataclass(frozen=True)
class LabelStep:
    """Where a label may start, and the sequences that spell each label there.

    The prefix is cache positions [kv_start, boundary); `position` is the position id of the
    first label token. Sequence i spells label `owners[i]`; `closed[i]` marks a sequence whose
    last token already ends the item (the model wrote `joy"` as one token), which therefore
    takes no ending-token factor. `first_depths[i]` is the 1-based depth of the first token that
    holds label characters (past a lead such as `"` that the step's tokens must write first), 0
    if none does. `canonical[l]` is the sequence whose first-token quantities label l reports.
    """

    boundary: int
    position: int
    prefix_logprobs: torch.Tensor  # (vocab,) log-probs of the token at `boundary`
    prefix_logits: torch.Tensor  # (vocab,) raw logits there
    sequences: Sequence[Sequence[int]]
    owners: Sequence[int]
    closed: Sequence[bool]
    first_depths: Sequence[int]
    canonical: Sequence[int]
    terminators: torch.Tensor  # (vocab,) bool: tokens that end a label here


@dataclass(frozen=True)
class StepScores:
    """Scores of one step, per label l (n_labels,) and per sequence i (n_sequences,)."""

    complete: np.ndarray  # [l] log P(label l complete here): logsumexp over its sequences
    first_logp: np.ndarray  # [l] log P(path to its canonical first label token); -inf if none
    first_logit: np.ndarray  # [l] raw logit of that token; NaN if none
    first_node: np.ndarray  # [l] trie node of that token (labels sharing it share it); -1
    sequence_logp: np.ndarray  # [i] log P(sequence i, then an ending token)


#: Trie nodes per model call: the call's logits are nodes x vocabulary floats, so the chunk
#: shrinks with the vocabulary (2^26 floats = 256 MiB: 1,365 nodes at 49k, 256 at 262k).
LOGIT_BUDGET = 2**26


def prune_spellings(
    sequences: Sequence[Sequence[int]],
    owners: Sequence[int],
    protected: Sequence[bool],
    first_logprobs: torch.Tensor,
    threshold: float,
    n_labels: int,
) -> tuple[list[int], np.ndarray]:
    """Sequences worth scoring, and per label a bound on the probability of the others.

    A sequence is dropped when its first token has probability below `threshold` at the step
    (read from the step's own distribution, so no forward is needed) and no protected sequence
    (a label's canonical spelling, the generated one) starts with that token: the whole trie
    subtree under that token is skipped. Whatever follows, P(a dropped sequence of label l, then
    an ending token) <= the sum over its distinct dropped first tokens of P(token), which is
    returned as `bound[l]`: the reported P(label) is exact minus at most that.
    """
    first = [seq[0] for seq in sequences]
    keep_tokens = {tok for tok, prot in zip(first, protected, strict=True) if prot}
    picked = first_logprobs[torch.as_tensor(first, dtype=torch.long)].double().exp().tolist()
    p = dict(zip(first, picked, strict=True))
    keep, dropped = [], [set() for _ in range(n_labels)]
    for i, (tok, owner) in enumerate(zip(first, owners, strict=True)):
        if tok in keep_tokens or p[tok] >= threshold:
            keep.append(i)
        else:
            dropped[owner].add(tok)
    bound = np.array([float(sum(p[t] for t in toks)) for toks in dropped])
    return keep, bound


def score_label_steps(
    model: torch.nn.Module, cache: DynamicCache, kv_start: int, steps: Sequence[LabelStep]
) -> list[StepScores]:
    """Scores of every step of one doc whose prompt and path fill `cache` (batch size 1).

    Positions before `kv_start` (left padding) are never attended to; cached keys hold
    position ids counted from `kv_start`. The cache grows by the trie nodes; callers drop it.
    """
    positions = _positions(cache, kv_start)
    return _score_blocks(model, cache, positions, [(kv_start, steps)])[0]


def score_label_steps_rows(
    model: torch.nn.Module,
    cache: DynamicCache,
    pads: Sequence[int],
    steps_per_row: Sequence[Sequence[LabelStep]],
) -> list[list[StepScores]]:
    """`score_label_steps` for every doc of a generation batch, the generation cache untouched.

    `cache` is the batch's generation cache (row r left-padded by `pads[r]`; step boundaries in
    those padded coordinates). The rows' cached prefixes, padding dropped, are joined along the
    sequence axis into one batch-size-1 cache, and every row's tries attend only to their own
    block (a block-diagonal tree mask; position ids are the rows' own).
    """
    rows = [r for r, steps in enumerate(steps_per_row) if steps]
    results: list[list[StepScores]] = [[] for _ in steps_per_row]
    if not rows:
        return results
    spans = [(r, pads[r], max(step.boundary for step in steps_per_row[r])) for r in rows]
    check_full_cache(cache, max(end for _, _, end in spans))
    joined = DynamicCache()
    for layer_idx, layer in enumerate(cache.layers):
        keys = torch.cat([layer.keys[r : r + 1, :, a:b] for r, a, b in spans], dim=2)
        values = torch.cat([layer.values[r : r + 1, :, a:b] for r, a, b in spans], dim=2)
        joined.update(keys, values, layer_idx)
    blocks, positions, offset = [], [], 0
    for r, start, end in spans:
        shift = offset - start
        moved = [_shifted(step, shift) for step in steps_per_row[r]]
        blocks.append((offset, moved))
        positions.append(torch.arange(end - start))
        offset += end - start
    scored = _score_blocks(model, joined, torch.cat(positions), blocks)
    for r, block in zip(rows, scored, strict=True):
        results[r] = block
    return results


def check_full_cache(cache: object, length: int) -> None:
    """Raise unless every layer of `cache` holds keys for all of its first `length` positions.

    `hf-mlc` generates into a config-less `DynamicCache`, whose layers keep every position; a
    sliding-window or recurrent layer would not, and slicing it by position would silently
    score labels against the wrong context.
    """
    for i, layer in enumerate(getattr(cache, "layers", None) or []):
        keys = getattr(layer, "keys", None)
        if not isinstance(keys, torch.Tensor) or keys.shape[-2] < length:
            raise NotImplementedError(
                f"hf-mlc: cache layer {i} ({type(layer).__name__}) does not hold all {length} "
                "positions (a sliding-window or recurrent layer); label scoring needs every "
                "position of the prompt. Evaluate this model with `hf` (generated labels only)."
            )


def _shifted(step: LabelStep, shift: int) -> LabelStep:
    return replace(step, boundary=step.boundary + shift)


def _score_blocks(
    model: torch.nn.Module,
    cache: DynamicCache,
    cache_positions: torch.Tensor,
    blocks: Sequence[tuple[int, Sequence[LabelStep]]],
) -> list[list[StepScores]]:
    """Scores of every step of every block; a block's steps see cache positions
    [kv_start, boundary) and their own trie ancestors only."""
    forest = _forest(blocks)
    n = len(forest.tokens)
    cond = np.zeros(n)  # log P(node's token | its parent path)
    raw = np.zeros(n)  # raw logit of the node's token at its parent
    term = np.full(n, -np.inf)  # log P(an ending token | path through the node)
    # Depth-1 nodes read the step's own distribution: no model call needed.
    for _, step, trie, offset in forest.steps:
        first = torch.as_tensor(trie.tokens)[torch.as_tensor(trie.depths) == 1]
        nodes = offset + np.flatnonzero(np.asarray(trie.depths) == 1)
        cond[nodes] = step.prefix_logprobs.float().cpu()[first].numpy()
        raw[nodes] = step.prefix_logits.float().cpu()[first].numpy()
    needs_term = _needs_terminator(forest)
    has_child = np.zeros(n, dtype=bool)
    has_child[forest.parents[forest.parents >= 0]] = True
    # Only nodes that have children or end an open sequence need the model.
    fed = np.flatnonzero(has_child | needs_term)
    vocab = model.get_output_embeddings().weight.shape[0]
    chunk = max(1, LOGIT_BUDGET // vocab)
    in_cache = np.full(n, -1)  # cache index of a fed node
    base = int(cache.get_seq_length())
    positions = cache_positions
    kv = np.array([forest.steps[k][0] for k in forest.step_of])
    bounds = np.array([forest.steps[k][1].boundary for k in forest.step_of])
    for start in range(0, len(fed), chunk):
        nodes = fed[start : start + chunk]
        cache_len = int(cache.get_seq_length())
        cols = torch.arange(cache_len)
        allowed = (cols >= torch.as_tensor(kv[nodes])[:, None]) & (
            cols < torch.as_tensor(bounds[nodes])[:, None]
        )
        local = {int(g): i for i, g in enumerate(nodes)}
        local_parents = []
        rows, anc = [], []
        for i, g in enumerate(nodes):
            p = int(forest.parents[g])
            local_parents.append(local.get(p, -1))
            while p >= 0:  # ancestors fed in earlier chunks are read from the cache
                if p not in local:
                    rows.append(i)
                    anc.append(in_cache[p])
                p = int(forest.parents[p])
        if rows:
            allowed[torch.as_tensor(rows), torch.as_tensor(anc)] = True
        node_positions = torch.as_tensor(forest.positions[nodes])
        logits, _ = tree_forward(
            model,
            cache,
            forest.tokens[nodes].tolist(),
            local_parents,
            node_positions.tolist(),
            allowed,
            positions,
        )
        positions = torch.cat([positions, node_positions])
        in_cache[nodes] = base + start + np.arange(len(nodes))
        logits = logits.float().cpu()
        lse = torch.logsumexp(logits, dim=-1)
        # Children of this chunk's nodes: one gather.
        child = np.flatnonzero(np.isin(forest.parents, nodes))
        if child.size:
            at = torch.as_tensor([local[int(p)] for p in forest.parents[child]])
            tok = torch.as_tensor(forest.tokens[child])
            picked = logits[at, tok]
            raw[child] = picked.numpy()
            cond[child] = (picked - lse[at]).numpy()
        # Ending tokens of this chunk's sequence ends: one masked logsumexp per terminator set.
        ends = [i for i, g in enumerate(nodes) if needs_term[g]]
        by_mask: dict[int, list[int]] = {}
        for i in ends:
            by_mask.setdefault(int(forest.step_of[nodes[i]]), []).append(i)
        for k, idx in _group_by_terminators(by_mask, forest).items():
            mask = forest.steps[k][1].terminators.to(logits.device)
            sel = torch.as_tensor(idx)
            if mask.any():
                ending = torch.logsumexp(logits[sel][:, mask], dim=-1) - lse[sel]
                term[nodes[idx]] = ending.numpy()
    cum = _cumulative(forest, cond)
    return _read(blocks, forest, cum, raw, term)


def _read(
    blocks: Sequence[tuple[int, Sequence[LabelStep]]],
    forest: _Forest,
    cum: np.ndarray,
    raw: np.ndarray,
    term: np.ndarray,
) -> list[list[StepScores]]:
    """Per-step, per-label scores from the node arrays (array operations per step)."""
    out: list[list[StepScores]] = []
    k = 0
    for _, block in blocks:
        out.append([])
        for step in block:
            _, _, trie, offset = forest.steps[k]
            k += 1
            ends = offset + np.asarray(trie.ends)
            closed = np.asarray(step.closed, dtype=bool)
            seq_lp = cum[ends] + np.where(closed, 0.0, term[ends])
            owners = np.asarray(step.owners)
            n_labels = len(step.canonical)
            complete = np.full(n_labels, -np.inf)
            np.logaddexp.at(complete, owners, seq_lp)
            canon = np.asarray(step.canonical)
            depth = np.asarray(step.first_depths)[canon]
            first_node = np.full(n_labels, -1)
            for label, (seq, d) in enumerate(zip(canon, depth, strict=True)):
                if d > 0:
                    first_node[label] = offset + trie.path(trie.ends[seq])[d - 1]
            has = first_node >= 0
            first_logp = np.where(has, cum[np.maximum(first_node, 0)], -np.inf)
            first_logit = np.where(has, raw[np.maximum(first_node, 0)], np.nan)
            out[-1].append(StepScores(complete, first_logp, first_logit, first_node, seq_lp))
    return out
