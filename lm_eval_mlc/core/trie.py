"""A prefix trie over label token sequences, flattened for one batched forward pass.

Labels that share leading tokens ("dis" in disappointment/disapproval/disgust) share trie
nodes, so scoring every label at a step feeds each distinct (prefix, token) once. Nodes are in
breadth-first order: a node's parent always comes before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LabelTrie:
    """Flattened trie. Node i holds `tokens[i]` at depth `depths[i]` (1 = first label token)
    under `parents[i]` (-1 = the root, i.e. the shared prefix). `ends[k]` is the node where
    label k's sequence ends; `firsts[k]` its first token."""

    tokens: tuple[int, ...]
    parents: tuple[int, ...]
    depths: tuple[int, ...]
    ends: tuple[int, ...]
    firsts: tuple[int, ...]

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> LabelTrie:
        """Trie of the given token sequences (each non-empty); duplicates share their end node."""
        if any(len(seq) == 0 for seq in sequences):
            raise ValueError(
                "Expected every label to have at least one token, but got an empty one."
            )
        index: dict[tuple[int, ...], int] = {}
        tokens: list[int] = []
        parents: list[int] = []
        depths: list[int] = []
        for depth in range(1, max(len(seq) for seq in sequences) + 1):
            for seq in sequences:
                key = tuple(seq[:depth])
                if len(seq) >= depth and key not in index:
                    index[key] = len(tokens)
                    tokens.append(seq[depth - 1])
                    parents.append(index[key[:-1]] if depth > 1 else -1)
                    depths.append(depth)
        return cls(
            tokens=tuple(tokens),
            parents=tuple(parents),
            depths=tuple(depths),
            ends=tuple(index[tuple(seq)] for seq in sequences),
            firsts=tuple(seq[0] for seq in sequences),
        )

    def __len__(self) -> int:
        return len(self.tokens)

    def path(self, node: int) -> list[int]:
        """Node indices from depth 1 down to `node`."""
        nodes = []
        while node >= 0:
            nodes.append(node)
            node = self.parents[node]
        return nodes[::-1]
