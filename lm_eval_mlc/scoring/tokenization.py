"""Text ↔ token ids in one place: a label's ids as they follow a context, the text of ids as
they read after other ids, every token's mid-sequence text, and every id that ends a generation.

Works with any transformers tokenizer that has `__call__`, `decode` and `convert_tokens_to_ids`
(fast `TokenizersBackend`, Python tokenizers, `MistralCommonBackend`). Text is always encoded
with `add_special_tokens=False` and decoded with `skip_special_tokens=False` and no space
clean-up, so a decode reads exactly what the ids spell.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The text a label is tokenized after when its context merges with it (see `split_in_context`):
# a newline ends a pre-token in every BPE/SentencePiece scheme we know and carries no dummy prefix.
MERGE_ANCHOR = "\n"
# `token_texts` decodes each id after this text's ids, so the id reads as it does mid-sequence.
GUARD_TEXT = "a"
# `continuation_text` only looks at the last ids of `previous`: enough for any decoder's
# boundary effects (a stripped leading space, a UTF-8 character split over up to 4 byte tokens).
PREVIOUS_TAIL = 8
# End-of-turn / end-of-text tokens that end a generation when the tokenizer really has them as
# special tokens (a vocabulary piece or a non-special added token spelt the same does not count).
END_OF_TURN_TOKENS = (
    "</s>",
    "<eos>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|eot|>",
    "<|end|>",
    "<|return|>",
    "<end_of_turn>",
    "<|end_of_turn|>",
)


@dataclass(frozen=True)
class InContext:
    """A label's token ids as they follow a context.

    `merged` is True when the context's own tokens are not a prefix of the tokens of
    context + label (the boundary token merges), so `ids` come from the fallback rule of
    `split_in_context` rather than from the whole text.
    """

    ids: tuple[int, ...]
    merged: bool


def split_in_context(tokenizer: Any, context: str, label: str) -> InContext:
    """The token ids of `label` as they follow `context` in the same text.

    Rule: encode `context` and `context + label`; when the context's ids are a prefix of the
    whole text's ids, the label's ids are the rest (`merged=False`). This is what a model writes
    after the context: on SentencePiece tokenizers with a dummy prefix `joy` after `["` is
    `joy`, not the `▁joy` that `joy` encoded alone gives. An empty context means the label
    starts the text (so the dummy prefix applies).

    Fallback (`merged=True`), when the boundary merges (the context's last token joins the
    label's first characters, e.g. `"a, "` + `"anger"` with GPT-2-style BPE, where the whole
    text has `Ġanger` but the context alone ends in `Ġ`): the label is tokenized after
    `MERGE_ANCHOR` ("\\n") instead — the ids of `"\\n" + label` after the ids of `"\\n"` — which is
    the label's split at a boundary that does not merge, with no dummy prefix (`["anger"]` in
    the example). Should the anchor merge too, the label encoded alone is used. The whole text's
    tokens after the longest common prefix are never returned: they decode to part of the
    context plus the label, which is not what follows the context's own tokens.
    """
    return label_token_ids_batch(tokenizer, context, [label])[0]


def label_token_ids(tokenizer: Any, context: str, label: str) -> list[int]:
    """`split_in_context(tokenizer, context, label).ids` as a list."""
    return list(split_in_context(tokenizer, context, label).ids)


def label_token_ids_batch(tokenizer: Any, context: str, labels: Sequence[str]) -> list[InContext]:
    """`split_in_context` for every label after one context, in one batched tokenizer call
    (plus one more for the labels whose boundary merges, if any); same order as `labels`."""
    labels = list(labels)
    if not labels:
        return []
    head, *wholes = _encode(tokenizer, [context, *(context + label for label in labels)])
    found = [_after_prefix(head, whole) for whole in wholes]
    merged = [i for i, ids in enumerate(found) if ids is None]
    fallback = _after_anchor(tokenizer, [labels[i] for i in merged])
    out = [InContext(ids, False) if ids is not None else None for ids in found]
    for i, ids in zip(merged, fallback, strict=True):
        out[i] = InContext(ids, True)
    return out  # type: ignore[return-value]  # every None was filled above


def continuation_text(tokenizer: Any, ids: Sequence[int], previous: Sequence[int]) -> str:
    """The text of `ids` as it reads right after the ids `previous`; special tokens kept.

    SentencePiece decoders strip the leading space of a decode's first token, so `▁joy` alone
    reads `joy`; after `previous` it reads ` joy`. Computed as the decode of `previous + ids`
    less the decode of `previous`, looking only at the last `PREVIOUS_TAIL` ids of `previous`.
    With `previous` empty it is a plain decode. Where the decode of `previous` is not a prefix of
    the joint decode (its last bytes are an incomplete UTF-8 character that `ids` complete), the
    text after the two decodes' longest common prefix is returned, so the completed character
    is part of this text.
    """
    ids, tail = list(ids), list(previous)[-PREVIOUS_TAIL:]
    if not tail:
        return _decode(tokenizer, ids)
    return _after_text(_decode(tokenizer, tail), _decode(tokenizer, tail + ids))


def token_texts(tokenizer: Any, size: int) -> list[str]:
    """The text of every token id 0..size-1 as it reads mid-sequence (`▁"` reads ` "`).

    Each id is decoded after the ids of `GUARD_TEXT` in one batched decode (the Rust
    `decode_batch` of fast tokenizers) and the guard's own text is cut off, as in
    `continuation_text`. Ids at or past `len(tokenizer)` (a model's padded embedding rows) read
    as "". A byte token that is not a whole UTF-8 character reads as the replacement character.
    """
    n = max(0, min(size, len(tokenizer)))
    guard = _encode(tokenizer, [GUARD_TEXT])[0]
    head = _decode(tokenizer, guard)
    texts = _decode_batch(tokenizer, [[*guard, i] for i in range(n)])
    return [_after_text(head, text) for text in texts] + [""] * (size - n)


def eos_token_ids(tokenizer: Any, generation_config: Any = None) -> frozenset[int]:
    """Every id that ends a generation.

    The union of `tokenizer.eos_token_id`, `generation_config.eos_token_id` (an int or a list),
    and the ids of the `END_OF_TURN_TOKENS` the tokenizer has as special tokens. The
    pad token is never added from that list; it is in the set only when the tokenizer or the
    generation config names it as an EOS.
    """
    ids: set[int] = set(_as_ids(getattr(tokenizer, "eos_token_id", None)))
    if generation_config is not None:
        ids.update(_as_ids(getattr(generation_config, "eos_token_id", None)))
    pad = getattr(tokenizer, "pad_token_id", None)
    present = _special_tokens(tokenizer)
    for token in END_OF_TURN_TOKENS:
        if token in present:
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != pad:
                ids.add(token_id)
    return frozenset(ids)


# ---------------------------------------------------------------------------------- helpers
def _encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Ids of each text, no special tokens, in one batched call."""
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [list(ids) for ids in encoded]


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(
        list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
    )


def _decode_batch(tokenizer: Any, sequences: list[list[int]]) -> list[str]:
    """`_decode` of each sequence; the Rust batch decode where the tokenizer's `_decode` is the
    stock fast one (it is a plain backend decode then), else the tokenizer's own, one by one."""
    if not sequences:
        return []
    from transformers import PreTrainedTokenizerFast

    stock = getattr(PreTrainedTokenizerFast, "_decode", None)
    if isinstance(tokenizer, PreTrainedTokenizerFast) and type(tokenizer)._decode is stock:
        return tokenizer.backend_tokenizer.decode_batch(sequences, skip_special_tokens=False)
    return [_decode(tokenizer, ids) for ids in sequences]


def _after_prefix(head: list[int], whole: list[int]) -> tuple[int, ...] | None:
    """`whole` after `head` when `head` is its prefix, else None."""
    return tuple(whole[len(head) :]) if whole[: len(head)] == head else None


def _after_anchor(tokenizer: Any, labels: list[str]) -> list[tuple[int, ...]]:
    """The fallback of `split_in_context`: each label's ids after `MERGE_ANCHOR`, or alone."""
    if not labels:
        return []
    anchor, *wholes = _encode(
        tokenizer, [MERGE_ANCHOR, *(MERGE_ANCHOR + label for label in labels)]
    )
    found = [_after_prefix(anchor, whole) for whole in wholes]
    alone = [i for i, ids in enumerate(found) if ids is None]
    if alone:
        for i, ids in zip(alone, _encode(tokenizer, [labels[i] for i in alone]), strict=True):
            found[i] = tuple(ids)
    return found  # type: ignore[return-value]  # every None was filled above


def _after_text(head: str, whole: str) -> str:
    """`whole` after `head`; after their longest common prefix when `head` is not a prefix."""
    if whole.startswith(head):
        return whole[len(head) :]
    return whole[len(os.path.commonprefix([head, whole])) :]


def _as_ids(value: Any) -> Iterable[int]:
    """An EOS setting (None, an int or a list of ints) as ids."""
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def _special_tokens(tokenizer: Any) -> set[str]:
    """The strings the tokenizer has as special tokens: its named ones and the added tokens
    flagged special (Gemma's `</s>` is an added token but not special: an HTML tag)."""
    present = set(getattr(tokenizer, "all_special_tokens", ()) or ())
    added = getattr(tokenizer, "added_tokens_decoder", None)  # a method on MistralCommonBackend
    added = added if isinstance(added, Mapping) else {}
    present.update(str(token) for token in added.values() if getattr(token, "special", False))
    return present
