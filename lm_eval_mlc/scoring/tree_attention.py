"""One forward pass over many token branches that share a cached prefix (tree attention).

Each query node attends to an allowed set of cached positions (its prefix) plus its ancestors
among the new nodes, via 4-D additive attention masks, with explicit position ids. The result
equals running every root-to-node branch as its own sequence, at the cost of one forward.

Sliding-window layers get their own mask that also drops keys outside the window, so the cache
must hold every position of every layer: generate into a config-less `DynamicCache()` (its
layers never drop a position) and let the masks apply the window. Models with one attention
type get a single mask; models mixing full and sliding layers read `config.layer_types` and
take a dict of masks keyed by layer type (Gemma-2, Gemma-3, Qwen2 in transformers 5.x).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence

import torch

logger = logging.getLogger(__name__)

FULL = "full_attention"
SLIDING = "sliding_attention"
#: Attention implementations that add a 4-D float mask to the attention scores as given.
MASK_ATTENTION = ("eager", "sdpa")


def ancestor_mask(parents: Sequence[int]) -> torch.Tensor:
    """(Q, Q) bool: node q may attend to node j iff j is q or an ancestor of q."""
    n = len(parents)
    allowed = torch.eye(n, dtype=torch.bool)
    for q, parent in enumerate(parents):  # parents come first, so their rows are complete
        if parent >= 0:
            allowed[q] |= allowed[parent]
    return allowed


def attention_layer_types(config: object) -> tuple[str, ...]:
    """Attention type of every decoder layer: `"full_attention"` or `"sliding_attention"`.

    From `layer_types` where the config class declares it (the models that read it: Gemma-2/3,
    Qwen2, ...); otherwise every layer is sliding if `sliding_window` is set, else full (Mistral,
    Phi-3, Llama). A `layer_types` attribute on a class that does not declare it is ignored, as
    the model ignores it (Mistral warns and applies its window to every layer). Chunked, linear
    or other layer types raise `ValueError`: no mask here reproduces them.
    """
    text = _text_config(config)
    if _declares(text, "layer_types") and getattr(text, "layer_types", None) is not None:
        types = tuple(text.layer_types)
    else:
        if getattr(text, "sliding_window", None) is not None:
            kind = SLIDING
        elif getattr(text, "attention_chunk_size", None) is not None:
            kind = "chunked_attention"
        else:
            kind = FULL
        types = (kind,) * int(text.num_hidden_layers)
    unknown = sorted(set(types) - {FULL, SLIDING})
    if unknown:
        raise ValueError(
            f"Expected every attention layer to be one of ('{FULL}', '{SLIDING}'), but got "
            f"{unknown} ({type(text).__name__}); tree attention cannot mask these layers."
        )
    return types


def attention_window(config: object) -> int | None:
    """Window of the sliding layers (a key at position p is seen from q iff q - p < window),
    or None when no layer slides. The inequality is `masking_utils.sliding_window_overlay`'s.

    Raises `ValueError` for sliding layers without a window and for bidirectional models
    (Gemma-3 with `use_bidirectional_attention`), which are not causal language models.
    """
    text = _text_config(config)
    if not getattr(text, "is_causal", True) or getattr(text, "use_bidirectional_attention", False):
        raise ValueError(
            f"Expected a causal language model, but got a bidirectional {type(text).__name__}."
        )
    if SLIDING not in attention_layer_types(config):
        return None
    window = getattr(text, "sliding_window", None)
    if not isinstance(window, int) or window < 1:
        raise ValueError(
            "Expected `sliding_window` to be a positive int for sliding layers, but got "
            f"{window!r}."
        )
    return window


def check_attention_implementation(model: torch.nn.Module) -> None:
    """Make sure the model's attention takes a 4-D additive mask; call it before generating.

    eager and sdpa do. Any other implementation (FlashAttention 2/3, flex, kernels) is switched
    to sdpa, or to eager where sdpa is not supported (Gemma-2), with one warning; a model that
    cannot be switched raises `ValueError`.
    """
    current = _implementation(model)
    if current in MASK_ATTENTION:
        return
    switch = getattr(model, "set_attn_implementation", None)
    for candidate in MASK_ATTENTION[::-1] if switch is not None else ():  # sdpa first
        try:
            switch(candidate)
        except (ValueError, ImportError, NotImplementedError):
            continue  # this model does not support the candidate
        if _implementation(model) == candidate:  # some models only log that they cannot switch
            logger.warning(
                f"hf-mlc: attention implementation {current!r} cannot take the tree-attention "
                f"mask; switched the model to {candidate!r}."
            )
            return
    raise ValueError(
        f"Expected the attention implementation to be one of {MASK_ATTENTION}, but got "
        f"{current!r}, and the model could not be switched. Load it with "
        "`attn_implementation='sdpa'` or `attn_implementation='eager'`."
    )


def check_cache_holds(cache: object, length: int) -> None:
    """Raise `ValueError` unless every layer of `cache` holds exactly `length` positions of one row.

    Sliding-window layers drop old positions and static layers are preallocated past the
    filled length: neither lines up with a mask over positions. A config-less `DynamicCache()`
    does.
    """
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise ValueError(
            "Expected a `transformers` Cache with per-layer storage, but got "
            f"{type(cache).__name__}."
        )
    if any(getattr(cache, "is_sliding", ())):
        raise ValueError(
            "Expected a cache that keeps every position, but got sliding-window layers; generate "
            "into a config-less `DynamicCache()`."
        )
    for i, layer in enumerate(layers):
        keys = getattr(layer, "keys", None)
        held = keys.shape[-2] if isinstance(keys, torch.Tensor) and keys.numel() else 0
        rows = keys.shape[0] if isinstance(keys, torch.Tensor) and keys.numel() else 1
        if held != length or rows != 1:
            raise ValueError(
                f"Expected cache layer {i} ({type(layer).__name__}) to hold {length} positions of "
                f"one row, but got {held} positions of {rows} rows; use a config-less "
                "`DynamicCache()` cut to one row."
            )


def tree_forward(
    model: torch.nn.Module,
    cache: object,
    tokens: Sequence[int],
    parents: Sequence[int],
    positions: Sequence[int],
    prefix_allowed: torch.Tensor,
    prefix_positions: torch.Tensor,
) -> tuple[torch.Tensor, object]:
    """Logits (Q, vocab) float for tree nodes appended after `cache` (batch size 1).

    `parents[q]` indexes earlier nodes of this call (-1: none), `positions[q]` is the node's
    position id, `prefix_allowed` (Q, cache_len) bool says which cached positions each node
    sees, and `prefix_positions` (cache_len,) long is each cached key's position id (any value
    where no node may look). Sliding layers additionally drop keys outside their window, counted
    in position ids. An allowed key at a later position than its node raises `ValueError`.
    Returns the logits and `cache`, which now also holds the nodes (callers that grow a tree
    keep using it; others drop it).
    """
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    n_cached = int(prefix_positions.numel())
    if prefix_allowed.shape != (len(tokens), n_cached):
        raise ValueError(
            f"Expected `prefix_allowed` of shape {(len(tokens), n_cached)} (nodes, cached "
            f"positions), but got {tuple(prefix_allowed.shape)}."
        )
    if _implementation(model) not in MASK_ATTENTION:
        raise ValueError(
            f"Expected the attention implementation to be one of {MASK_ATTENTION}, but got "
            f"{_implementation(model)!r}; call `check_attention_implementation(model)` first."
        )
    check_cache_holds(cache, n_cached)
    query_pos = torch.as_tensor(list(positions), dtype=torch.long, device=device)
    key_pos = torch.cat([prefix_positions.to(device=device, dtype=torch.long), query_pos])
    allowed = torch.cat(
        [prefix_allowed.to(device=device, dtype=torch.bool), ancestor_mask(parents).to(device)],
        dim=1,
    )
    distance = query_pos[:, None] - key_pos[None, :]
    if bool((allowed & (distance < 0)).any()):
        raise ValueError("Expected every allowed key at or before its node's position.")
    masks = {}
    for kind in sorted(set(attention_layer_types(model.config))):
        seen = allowed if kind == FULL else allowed & (distance < attention_window(model.config))
        masks[kind] = torch.zeros(seen.shape, dtype=dtype, device=device).masked_fill(
            ~seen, torch.finfo(dtype).min
        )[None, None]
    # One attention type: one mask, which every model hands to all its layers as given. Mixed
    # types only come from `layer_types`, read by models that take a mask per layer type.
    mask = next(iter(masks.values())) if len(masks) == 1 else masks
    out = model(
        input_ids=torch.tensor([list(tokens)], device=device),
        attention_mask=mask,
        position_ids=query_pos[None],
        use_cache=True,
        **{cache_argument(model): cache},
    )
    return out.logits[0].float(), cache


def _text_config(config: object) -> object:
    get = getattr(config, "get_text_config", None)
    return get(decoder=True) if get is not None else config


def _declares(config: object, field: str) -> bool:
    """The config class declares `field`: a dataclass field (transformers 5) or an `__init__`
    parameter (4.x), not an attribute that unknown keyword arguments left behind."""
    fields = getattr(type(config), "__dataclass_fields__", None)
    if fields is not None:
        return field in fields
    return field in inspect.signature(type(config).__init__).parameters


def _implementation(model: torch.nn.Module) -> str:
    """The decoder's attention implementation; unset means eager, as the models read it."""
    return getattr(_text_config(model.config), "_attn_implementation", None) or "eager"


def cache_argument(model: torch.nn.Module) -> str:
    """`cache` where the forward takes it (transformers 5 renamed `past_key_values`, which now
    warns), else the older name."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
