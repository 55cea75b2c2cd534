"""Brute-force label probabilities of an `hf-mlc` step, from full uncached forwards.

Independent of the scoring code: the prompt and the generated tokens are re-run from scratch
(one forward per sequence, no cache, no tree mask), label spellings come from the tokenizer on
the whole text, and the generated label's tokens are located by decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def greedy_ids(lm, prompt: str, max_new_tokens: int) -> tuple[list[int], list[int]]:
    """The prompt's ids (as `hf-mlc` encodes them) and its greedy continuation at batch 1."""
    context = lm.tok_encode(prompt)
    with torch.no_grad():
        out = lm.model.generate(
            torch.tensor([context]), max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=lm.tokenizer.pad_token_id,
        )  # fmt: skip
    return context, out[0, len(context) :].tolist()


def sequence_logprob(lm, prefix: Sequence[int], tokens: Sequence[int]) -> torch.Tensor:
    """log P(each token of `tokens` | prefix and the tokens before it), and the log-probs of
    the token after them, from one uncached forward: (len(tokens),) and (vocab,)."""
    ids = list(prefix) + list(tokens)
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    start = len(prefix) - 1
    picked = torch.stack([lp[start + i, t] for i, t in enumerate(tokens)])
    return picked, lp[-1]


def decoded_offsets(lm, ids: Sequence[int], previous: Sequence[int]) -> tuple[str, list[int]]:
    """The text of `ids` after `previous` and where each token starts in it."""
    base = lm.tokenizer.decode(list(previous), skip_special_tokens=False)

    def text(k: int) -> str:
        return lm.tokenizer.decode(list(previous) + list(ids[:k]), skip_special_tokens=False)[
            len(base) :
        ]

    return text(len(ids)), [len(text(k)) for k in range(len(ids) + 1)]


def generated_label_tokens(
    lm, context: Sequence[int], gen: Sequence[int], t: int, written: str
) -> tuple[list[int], int | None]:
    """Tokens from step token `t` through the one holding the last character of `written` (the
    label as the model wrote it, found case-insensitively at or after token t), and the token
    after them (None at the end of the generation)."""
    text, offsets = decoded_offsets(lm, gen, context[-1:])
    start = text.casefold().index(written.casefold(), offsets[t])
    end = start + len(written)
    e = max(i for i in range(len(gen)) if offsets[i] < end)
    return list(gen[t : e + 1]), (gen[e + 1] if e + 1 < len(gen) else None)


def product_bound(lm, context, gen, t, written) -> float:
    """P(the generated label tokens) x P(the generated token after them): a lower bound of the
    exact probability of the label at its step (which also sums other endings and spellings)."""
    tokens, after = generated_label_tokens(lm, context, gen, t, written)
    tokens = tokens + ([after] if after is not None else [])
    picked, _ = sequence_logprob(lm, context + gen[:t], tokens)
    return math.exp(float(picked.sum()))


def spelling_probability(
    lm, prefix: Sequence[int], tokens: Sequence[int], terminators: torch.Tensor
) -> float:
    """P(tokens, then any token of `terminators`) after `prefix`."""
    picked, after = sequence_logprob(lm, prefix, tokens)
    return math.exp(float(picked.sum() + torch.logsumexp(after[terminators], 0)))


def spellings(name: str) -> list[str]:
    """The case variants `hf-mlc` documents: as listed, lower, Capitalized, Title, UPPER."""
    lower = name.lower()
    title = " ".join(w[:1].upper() + w[1:] for w in lower.split(" "))
    return list(dict.fromkeys([name, lower, lower[:1].upper() + lower[1:], title, name.upper()]))


def exact_step_probability(lm, context, gen, t: int, name: str, quote: str, written=None) -> float:
    """P(label `name` complete at step token t), summed over its distinct spellings: each case
    variant as the tokenizer splits the whole text (prompt, answer so far, label), and the
    tokens the model generated for it when `written` (the label as written) is given."""
    text, offsets = decoded_offsets(lm, gen, context[-1:])
    prompt_text = lm.tokenizer.decode(context, skip_special_tokens=False)
    before = prompt_text + text[: offsets[t]]
    lead = ""
    if written is not None:
        lead = text[offsets[t] : text.casefold().index(written.casefold(), offsets[t])]
    pre = lm.tokenizer.encode(before, add_special_tokens=False)
    seqs: dict[tuple[int, ...], bool] = {}
    for variant in spellings(name):
        full = lm.tokenizer.encode(before + lead + variant, add_special_tokens=False)
        assert full[: len(pre)] == pre, "the label merges with the text before it"
        seqs[tuple(full[len(pre) :])] = False
    if written is not None:
        tokens, _ = generated_label_tokens(lm, context, gen, t, written)
        start = text.casefold().index(written.casefold(), offsets[t])
        end_of_tokens = offsets[t + len(tokens)]
        closed = bool(text[start + len(written) : end_of_tokens].strip())
        seqs[tuple(tokens)] = seqs.get(tuple(tokens), False) or closed
    terminators = lm._terminators(quote)
    prefix = list(context) + list(gen[:t])
    total = 0.0
    for seq, closed in seqs.items():
        if closed:
            picked, _ = sequence_logprob(lm, prefix, seq)
            total += math.exp(float(picked.sum()))
        else:
            total += spelling_probability(lm, prefix, seq, terminators)
    return total


def script_generation(lm, answer: str) -> list[int]:
    """Make `lm.model.generate` write `answer` (then stop), with the model's own logits and
    into the cache the caller passes, as `generate()` does; returns the answer's token ids."""
    from types import SimpleNamespace

    from transformers import DynamicCache

    from lm_eval_mlc.scoring.tree_attention import cache_argument

    model, script = lm.model, lm.tok_encode(answer, add_special_tokens=False)

    name = cache_argument(model)

    def generate(input_ids, attention_mask, max_length, **kwargs):
        cache = kwargs.get(name)
        batch, ctx_len = input_ids.shape
        n = min(len(script), max_length - ctx_len)
        ids = torch.cat([input_ids, torch.tensor([script[:n]] * batch)], dim=1)
        mask = torch.cat([attention_mask, torch.ones(batch, n, dtype=attention_mask.dtype)], 1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
            use_cache=True, **{name: cache if cache is not None else DynamicCache()},
        )  # fmt: skip
        if not kwargs.get("return_dict_in_generate"):
            return ids  # as `generate` returns for `hf`
        logits = tuple(out.logits[:, ctx_len - 1 + i] for i in range(n))
        return SimpleNamespace(sequences=ids, logits=logits, cache=getattr(out, name))

    model.generate = generate
    return script
