"""P(label appears anywhere in the output), by searching the tree of continuations.

From the prompt, every continuation is expanded breadth-first with nucleus (`top_p`) and
path-probability (`eps`) pruning until it stops (`is_final`: EOS, a stop string) or reaches
`max_new_tokens`. Labels are detected by exact token-sequence matching as soon as they are
complete: the token after them ends them (a terminator), or the path stopped right after them.
The node's probability, the total of every path through it, is then credited to the label once
per path: every continuation of the node contains the label, so crediting at detection is exact
and keeps labels found early on paths later pruned or cut. A path that reaches `max_new_tokens`
without stopping is unfinished: a label at its very end is not credited (`S1` may go on to
`S10`) and its whole probability is added to `unexplored`, as is the mass cut by pruning.

Guarantee, for every label i and up to float rounding: probs[i] <= P_i <= probs[i] + unexplored,
where P_i is the probability that label i appears, by `LabelDetector`'s rule, in the finished
token path (its stopping token included) of the unpruned process; so a label right before an
EOS counts only where that EOS's text starts with a terminator. With `top_p=1`, `eps=0` and
`max_new_tokens` at least the longest path of the process, `probs` is P and `unexplored` is 0.
`max_new_tokens` is the search's budget, not an end of the output: a caller whose generation
really stops at a token budget says so in `is_final`.

The search is independent of how a node's next-token distribution is computed: `expand`
receives the frontier and returns one log-prob vector per node. `hf-mlc` expands the frontier
in batches with tree attention over one KV cache (`cached_expander`); the benchmark plugs in
the straightforward one-uncached-forward-per-node expander to check both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lm_eval_mlc.scoring.tree_attention import tree_forward

OPENERS = frozenset("\"[,' \n")
TERMINATORS = frozenset("\"],'\n")


@dataclass
class Node:
    """A path of generated tokens and its probability; `cache_index` once it has been fed."""

    tokens: tuple[int, ...]
    prob: float
    parent: Node | None = None
    cache_index: int = -1
    found: frozenset[int] = frozenset()  # labels already complete on this path


@dataclass(frozen=True)
class MarginalResult:
    probs: np.ndarray  # (n_labels,) lower bound of P(label appears)
    unexplored: float  # probability mass pruned or cut unfinished at max_new_tokens
    n_expanded: int  # nodes whose next-token distribution was computed


class LabelDetector:
    """Finds labels in a token path by exact token-sequence matching.

    A label matches where one of its token sequences occurs, the token before it ends with an
    opener (quote, bracket, comma, space) or it starts the path, and the token after it starts
    with a terminator (quote, bracket, comma, newline) or the path ends there.
    """

    def __init__(self, variants: Sequence[Sequence[Sequence[int]]], token_text: Sequence[str]):
        self._variants = [[tuple(v) for v in label] for label in variants]
        self._text = token_text

    def labels_in(self, path: Sequence[int]) -> set[int]:
        """Every label occurring in a finished path."""
        return {label for end in range(1, len(path) + 1) for label in self._ending_at(path, end)}

    def completed(self, path: Sequence[int], final: bool) -> set[int]:
        """Labels that the path's last token completes: it terminates them, or the path ends."""
        found = self._ending_at(path, len(path) - 1)
        return found | self._ending_at(path, len(path)) if final else found

    def _ending_at(self, path: Sequence[int], end: int) -> set[int]:
        """Labels whose tokens occupy path[start:end] with an opener before, terminator after."""
        n = len(path)
        after = end == n or (end < n and self._text[path[end]][:1] in TERMINATORS)
        if not after or end <= 0:
            return set()
        found = set()
        for label, variants in enumerate(self._variants):
            for seq in variants:
                start = end - len(seq)
                if start < 0 or tuple(path[start:end]) != seq:
                    continue
                if start == 0 or self._text[path[start - 1]][-1:] in OPENERS:
                    found.add(label)
                    break
        return found


Expander = Callable[[Sequence[Node]], Sequence[torch.Tensor]]


def tree_marginal(
    root_logprobs: torch.Tensor,
    expand: Expander,
    detector: LabelDetector,
    n_labels: int,
    *,
    is_final: Callable[[Sequence[int]], bool],
    top_p: float,
    eps: float,
    max_new_tokens: int,
) -> MarginalResult:
    """Breadth-first search of continuations; `is_final(path)` says the path has stopped.

    A path of `max_new_tokens` tokens that has not stopped is left unexplored, not finished.
    """
    probs = np.zeros(n_labels)
    unexplored = 0.0
    n_expanded = 0
    pending: list[tuple[Node, torch.Tensor]] = [(Node((), 1.0), root_logprobs)]
    while pending:
        frontier: list[Node] = []
        for node, logprobs in pending:
            children, cut = _children(node, logprobs, top_p, eps)
            unexplored += cut
            for child in children:
                final = is_final(child.tokens)
                new = detector.completed(child.tokens, final) - node.found
                for label in new:
                    probs[label] += child.prob
                child.found = node.found | new
                if final:
                    continue
                if len(child.tokens) >= max_new_tokens:  # cut unfinished: the rest is unknown
                    unexplored += child.prob
                else:
                    frontier.append(child)
        if not frontier:
            break
        pending = list(zip(frontier, expand(frontier), strict=True))
        n_expanded += len(frontier)
    return MarginalResult(probs=probs, unexplored=unexplored, n_expanded=n_expanded)


def _children(
    node: Node, logprobs: torch.Tensor, top_p: float, eps: float
) -> tuple[list[Node], float]:
    """Children kept by nucleus and eps pruning, and the probability mass cut."""
    p = torch.nan_to_num(torch.exp(logprobs.double()), nan=0.0)  # NaN logits: no mass
    sorted_p, order = torch.sort(p, descending=True)
    if top_p >= 1:
        n_keep = int((sorted_p > 0).sum())
    else:  # the smallest prefix whose mass reaches top_p
        cum = torch.cumsum(sorted_p, 0)
        n_keep = min(
            int(torch.searchsorted(cum, torch.tensor([top_p], dtype=cum.dtype))) + 1, len(p)
        )
    children = []
    kept = 0.0
    for prob, token in zip(sorted_p[:n_keep].tolist(), order[:n_keep].tolist(), strict=True):
        path_prob = node.prob * prob
        if path_prob < eps or path_prob == 0.0:
            break  # sorted: every later child is smaller
        children.append(Node(node.tokens + (token,), path_prob, parent=node))
        kept += path_prob
    return children, max(node.prob - kept, 0.0)


def cached_expander(
    model: torch.nn.Module,
    cache: object,
    prompt_allowed: torch.Tensor,
    first_position: int,
    batch_size: int,
    *,
    prompt_positions: torch.Tensor | None = None,
    known: Mapping[tuple[int, ...], tuple[int, torch.Tensor]] | None = None,
) -> Expander:
    """Expander feeding each frontier node's last token after its cached ancestors.

    `prompt_allowed` (cache_len,) marks the prompt's cache positions; `first_position` is the
    position id of the first generated token; `prompt_positions` (cache_len,) is the position id
    of every cached key, by default the count of allowed positions before it (a left-padded row
    whose position ids start at 0 after the padding, as `generate` numbers them). Nodes are fed
    `batch_size` at a time, appended to `cache` (batch size 1, every position kept: a
    config-less `DynamicCache`) and remembered by `cache_index`, so a child reuses its
    ancestors' KV; the position ids of the cache grow with them, so sliding-window layers see
    the window of each node's own path. `known` maps paths already in `cache` (the greedy
    generation's) to their cache index and next-token logits: those nodes cost no forward.
    """
    if prompt_positions is None:
        prompt_positions = (torch.cumsum(prompt_allowed.long(), 0) - 1).clamp(min=0)
    positions = prompt_positions.long().cpu()
    known = known or {}

    def expand(frontier: Sequence[Node]) -> list[torch.Tensor]:
        nonlocal positions
        out: dict[int, torch.Tensor] = {}
        todo: list[Node] = []
        for node in frontier:
            if node.tokens in known:
                node.cache_index, logits = known[node.tokens]
                out[id(node)] = torch.log_softmax(logits.float(), dim=-1).cpu()
            else:
                todo.append(node)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            cache_len = positions.numel()
            allowed = torch.zeros(len(chunk), cache_len, dtype=torch.bool)
            allowed[:, : prompt_allowed.numel()] = prompt_allowed
            for row, node in enumerate(chunk):
                ancestor = node.parent
                while ancestor is not None and ancestor.cache_index >= 0:
                    allowed[row, ancestor.cache_index] = True
                    ancestor = ancestor.parent
            node_positions = torch.tensor(
                [first_position + len(node.tokens) - 1 for node in chunk], dtype=torch.long
            )
            logits, _ = tree_forward(
                model,
                cache,
                [node.tokens[-1] for node in chunk],
                [-1] * len(chunk),
                node_positions.tolist(),
                allowed,
                positions,
            )
            positions = torch.cat([positions, node_positions])
            for row, (node, lp) in enumerate(
                zip(chunk, torch.log_softmax(logits, dim=-1).cpu(), strict=True)
            ):
                node.cache_index = cache_len + row
                out[id(node)] = lp
        return [out[id(node)] for node in frontier]

    return expand
