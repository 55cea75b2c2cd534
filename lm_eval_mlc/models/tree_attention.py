"""One forward pass over many token branches that share a cached prefix (tree attention).

Each query node attends to an allowed set of cached positions (its prefix) plus its ancestors
among the new nodes, via a 4-D additive attention mask, with explicit position ids. The result
equals running every root-to-node branch as its own sequence, at the cost of one forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def ancestor_mask(parents: Sequence[int]) -> torch.Tensor:
    """(Q, Q) bool: node q may attend to node j iff j is q or an ancestor of q."""
    n = len(parents)
    allowed = torch.eye(n, dtype=torch.bool)
    for q, parent in enumerate(parents):  # parents come first, so their rows are complete
        if parent >= 0:
            allowed[q] |= allowed[parent]
    return allowed


def tree_forward(
    model: torch.nn.Module,
    cache: object,
    tokens: Sequence[int],
    parents: Sequence[int],
    positions: Sequence[int],
    prefix_allowed: torch.Tensor,
) -> tuple[torch.Tensor, object]:
    """Logits (Q, vocab) for tree nodes appended after `cache` (batch size 1).

    `parents[q]` indexes earlier nodes of this call (-1: none), `positions[q]` is the node's
    position id, `prefix_allowed` (Q, cache_len) bool says which cached positions each node
    sees. Returns the logits and the cache, which now also holds the nodes (callers that grow a
    tree keep using it; others drop it).
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    allowed = torch.cat([prefix_allowed.to(device), ancestor_mask(parents).to(device)], dim=1)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)[None, None]
    out = model(
        input_ids=torch.tensor([list(tokens)], device=device),
        past_key_values=cache,
        attention_mask=mask,
        position_ids=torch.tensor([list(positions)], device=device),
        use_cache=True,
    )
    return out.logits[0].float(), out.past_key_values
