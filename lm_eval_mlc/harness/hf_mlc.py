"""`hf-mlc`: lm-eval's HF model that also measures label probabilities while it generates.

It keeps every argument of `HFLM` (`pretrained`, `gguf_file`, `dtype`, `device`, `batch_size`
including `auto`, `mixed_precision_dtype`, `think_end_token`, chat templates, `parallelize`,
`accelerate launch`) and its greedy generation; the answer text is exactly what `hf` returns.
For requests of a multi-label task (docs carrying `label_names`) the response is a JSON payload
(`lm_eval_mlc.core.payload`) holding that text, the exact label distribution at every label step and
each strategy's P(label); other requests get plain text, exactly as from `hf`.

Cost: the prompt is prefilled once, by generation, into a private full-attention
`DynamicCache` (so sliding-window models keep every position; their windows are applied by the
scoring masks). All label steps of all docs of a batch are then scored together over their
label tries, reusing that cache; the `marginal` tree search (opt-in) expands its frontier in
batches over the same cache.

What is scored at a step: every label as the distinct token sequences that spell it there —
its case variants (`CASE_VARIANTS`) tokenized in context after the step's prefix
(`lm_eval_mlc.scoring.tokenization`), and, for the label the model wrote, the tokens it really
generated — each followed by a token that ends the item as the answer parser reads it
(`lm_eval_mlc.core.item_ends.closes_item`, or any EOS id). P(label) is the sum over them.

Hand-over: the label set travels in the doc (lm-eval passes each request's doc to the model, and
never to a backend), so the same task YAMLs run unchanged on `hf`, vLLM and API models, and the
prompt that lists the labels keys the request cache. Options travel as `mlc_*` generation
kwargs (part of the request-cache key), e.g. `--gen_kwargs mlc_strategies=all,mlc_top_p=0.95`;
`hf-mlc` removes them before calling `generate()`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lm_eval.models  # noqa: F401  (register lm-eval's own models before ours; see plugin.py)
import numpy as np
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import (
    handle_stop_sequences,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from lm_eval.models.utils_hf import stop_sequences_criteria
from scipy.stats import binomtest
from tqdm import tqdm
from transformers import DynamicCache

from lm_eval_mlc.core import registry
from lm_eval_mlc.core.item_ends import closes_item
from lm_eval_mlc.core.matching import LabelSpan, label_spans, parse_labels
from lm_eval_mlc.core.payload import dump_payload
from lm_eval_mlc.core.strategies import step_records, step_strategies
from lm_eval_mlc.scoring.label_scoring import (
    LabelStep,
    StepScores,
    check_full_cache,
    prune_spellings,
    score_label_steps_rows,
)
from lm_eval_mlc.scoring.marginal import LabelDetector, Node, cached_expander, tree_marginal
from lm_eval_mlc.scoring.tokenization import (
    InContext,
    continuation_text,
    eos_token_ids,
    label_token_ids_batch,
    token_texts,
)
from lm_eval_mlc.scoring.tree_attention import cache_argument, check_attention_implementation

logger = logging.getLogger(__name__)

ALL_STRATEGIES = registry.STRATEGY_NAMES
DEFAULT_STRATEGIES = registry.DEFAULT_STRATEGIES
TRUNCATION = ("error", "left")

#: Spellings scored for every label at every step (recorded in the payload's `options`).
CASE_VARIANTS = ("as_listed", "lower", "capitalized", "title", "upper")

#: Characters of prompt and answer before a step that its labels are tokenized after: enough
#: for every tokenizer's merges at the boundary, short enough to cache per (context, label).
CONTEXT_CHARS = 32


def case_variants(name: str) -> list[str]:
    """`name` as listed, lower, Capitalized, Title Case and UPPER, distinct, in that order."""
    lower = name.lower()
    title = " ".join(w[:1].upper() + w[1:] for w in lower.split(" "))
    return list(dict.fromkeys([name, lower, lower[:1].upper() + lower[1:], title, name.upper()]))


@dataclass(frozen=True)
class MlcOptions:
    """Options of the label measurements, from `mlc_*` generation kwargs."""

    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    top_p: float = 0.99
    eps: float = 0.01
    max_new_tokens: int = 0  # marginal search depth; 0: the request's max_gen_toks
    threshold: float = 0.5
    tree_batch_size: int = 64
    truncation: str = "error"
    prune: float = 1e-4
    samples: int = 32  # continuations sampled per doc for `sampled`
    seed: int = 1234  # of the `sampled` draws, reset for every doc

    @classmethod
    def pop_from(cls, gen_kwargs: dict[str, Any]) -> MlcOptions:
        """Remove every `mlc_*` key from `gen_kwargs` and parse them (clear error if unknown)."""
        raw = {k[4:]: gen_kwargs.pop(k) for k in [k for k in gen_kwargs if k.startswith("mlc_")]}
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"Expected mlc_* generation kwargs among "
                f"{sorted('mlc_' + f for f in cls.__dataclass_fields__)}, but got "
                f"{sorted('mlc_' + k for k in unknown)}."
            )
        if "strategies" in raw:
            raw["strategies"] = _parse_strategies(raw["strategies"])
        if "truncation" in raw and raw["truncation"] not in TRUNCATION:
            raise ValueError(
                f"Expected mlc_truncation to be one of {TRUNCATION}, but got {raw['truncation']!r}."
            )
        kwargs = {k: type(getattr(cls(), k))(v) for k, v in raw.items() if k != "strategies"}
        return cls(**kwargs, **({"strategies": raw["strategies"]} if "strategies" in raw else {}))

    def as_dict(self) -> dict[str, Any]:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}
        return out | {"case_variants": list(CASE_VARIANTS)}


def _parse_strategies(value: Any) -> tuple[str, ...]:
    names = value if isinstance(value, (list, tuple)) else str(value).replace("|", ",").split(",")
    names = [n.strip() for n in names if n.strip()]
    if names == ["all"]:
        return ALL_STRATEGIES
    bad = [n for n in names if n not in ALL_STRATEGIES]
    if bad:
        raise ValueError(f"Expected mlc_strategies among {ALL_STRATEGIES} or 'all', but got {bad}.")
    return tuple(dict.fromkeys(["generated", *names]))


@dataclass
class _Prepared:
    """One answer's label steps, before the batch's label-scoring forward."""

    text: str
    label_names: list[str]
    pad: int  # left padding of its row in the generation batch
    nonfinite: int  # generated tokens whose logits had NaN/inf
    root_logprobs: torch.Tensor | None  # first generated token's log-probs (marginal search)
    steps: list[LabelStep] = field(default_factory=list)
    step_labels: list[int] = field(default_factory=list)
    token_indices: list[int] = field(default_factory=list)
    path_logp: list[float] = field(default_factory=list)
    tokens_match: list[bool | None] = field(default_factory=list)
    pruned: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Answer:
    """A generated row read as `hf` reads it, plus where its label steps may lie."""

    text: str  # exactly what `hf` returns
    internal: str  # the tokens' text as it reads after the prompt, special tokens kept
    offsets: list[int]  # offsets[i]: where token i starts in `internal` (len n_tokens + 1)
    region: tuple[int, int]  # [start, end) of the answer in `internal` (after thinking, cut)
    n_tokens: int  # tokens that the answer region needs


@register_model("hf-mlc")
class HFMultiLabelLM(HFLM):
    """Hugging Face causal LM that returns label-probability payloads for multi-label tasks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_attention_implementation(self.model)
        self._eos_ids = eos_token_ids(
            self.tokenizer, getattr(self.model, "generation_config", None)
        )
        self._token_text: list[str] | None = None
        self._detector_text: list[str] | None = None
        self._terminator_masks: dict[str, torch.Tensor] = {}
        self._in_context: dict[tuple[str, str], InContext] = {}
        self._auto_batch_size: int | None = None
        self._label_room: dict[tuple[str, ...], int] = {}

    # ------------------------------------------------------------------ harness entry point
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Greedy generation, batched by identical generation kwargs, longest prompts first."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[repr(sorted(req.args[1].items()))].append(i)
        lengths = [len(self.tok_encode(req.args[0])) for req in requests]
        self._check_prompt_room(requests, lengths)
        results: list[str | None] = [None] * len(requests)
        batch_size = self._generation_batch_size()
        pbar = tqdm(
            total=len(requests),
            disable=disable_tqdm or self.rank != 0,
            desc="Running generate_until requests (hf-mlc)",
        )
        truncated = 0
        for indices in groups.values():
            indices.sort(key=lambda i: (-lengths[i], requests[i].args[0]))  # as `hf` orders
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                texts, n_truncated = self._generate_batch([requests[i] for i in chunk])
                truncated += n_truncated
                for i, text in zip(chunk, texts, strict=True):
                    results[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
                pbar.update(len(chunk))
        pbar.close()
        if truncated:
            logger.warning(
                f"hf-mlc: {truncated} of {len(requests)} prompts were longer than the model's "
                f"context (max_length {self.max_length}, less the room kept for generation and "
                "label scoring) and were truncated from the left; their start is lost."
            )
        return results  # type: ignore[return-value]

    def _generation_batch_size(self) -> int:
        """The batch size, detected once (as `hf` does) when it is `auto`."""
        if isinstance(self.batch_size, int):
            return self.batch_size
        if self._auto_batch_size is None:
            self._auto_batch_size = int(self._detect_batch_size())
            logger.info(f"hf-mlc: detected batch size {self._auto_batch_size}")
        return self._auto_batch_size

    def _loglikelihood_tokens(
        self,
        requests: list[tuple[tuple[str, str], list[int], list[int]]],
        disable_tqdm: bool = False,
        override_bs: int | None = None,
    ) -> list[tuple[float, bool]]:
        """HFLM's scoring (unary tasks), its per-request truncation warnings replaced by one."""
        limit = self.max_length + 1
        prompts = {key[0] for key, _, _ in requests}
        long = {key[0] for key, ctx, cont in requests if len(ctx) + len(cont) > limit}
        hflm_logger = logging.getLogger(HFLM.__module__)
        quiet = _DropMessages("Combined length of context")
        hflm_logger.addFilter(quiet)
        try:
            results = super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        finally:
            hflm_logger.removeFilter(quiet)
        if long:
            logger.warning(
                f"hf-mlc: {len(long)} of {len(prompts)} prompts were longer than the model's "
                f"context (max_length {self.max_length}, with the answer) and were truncated "
                "from the left; their start is lost."
            )
        return results

    # ------------------------------------------------------------------ context room
    def _room_after_prompt(
        self, names: Sequence[str], max_gen_toks: int, options: MlcOptions
    ) -> int:
        """Positions kept after the prompt: generation, then label tries past the last token.

        Label tries extend past the generated tokens by up to a label's length (and a lead), and
        the `marginal` search by up to `mlc_max_new_tokens`; keeping their positions inside
        `max_length` avoids index errors in models with learned position embeddings.
        """
        key = tuple(names)
        if key not in self._label_room:
            self._label_room[key] = max(
                (len(self.tok_encode(' "' + v, add_special_tokens=False)) for n in names
                 for v in (n, n.upper())),
                default=0,
            )  # fmt: skip
        label_room = self._label_room[key]
        after = max_gen_toks + label_room + 1
        if names and "marginal" in options.strategies:
            after = max(after, options.max_new_tokens + label_room + 1)
        return after

    def _check_prompt_room(self, requests: Sequence[Instance], lengths: Sequence[int]) -> None:
        """Refuse, before any generation, multi-label prompts that do not fit the context.

        Cutting them would drop the instruction and the label list from the left, silently
        changing the task; `mlc_truncation=left` allows it explicitly (one warning).
        """
        too_long: list[int] = []
        room = 0
        for req, length in zip(requests, lengths, strict=True):
            names = _label_names(req)
            if not names:
                continue
            gen_kwargs = dict(req.args[1])
            options = MlcOptions.pop_from(gen_kwargs)
            max_gen_toks = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)["max_gen_toks"]
            room = self._room_after_prompt(names, max_gen_toks, options)
            if options.truncation == "error" and length > self.max_length - room:
                too_long.append(length)
        if too_long:
            raise ValueError(
                f"hf-mlc: {len(too_long)} of {len(requests)} multi-label prompts (longest "
                f"{max(too_long)} tokens) do not fit the model's context: max_length "
                f"{self.max_length} less {room} positions for generation and label scoring. "
                "Cutting them from the left would drop the instruction and the label list. "
                "Use fewer shots or labels, a model with a longer context (max_length=...), or "
                "allow left truncation with --gen_kwargs mlc_truncation=left."
            )

    # ------------------------------------------------------------------ one batch
    def _generate_batch(self, requests: Sequence[Instance]) -> tuple[list[str], int]:
        """Payloads (or plain text) of one batch, and how many of its prompts were truncated."""
        gen_kwargs = dict(requests[0].args[1])
        options = MlcOptions.pop_from(gen_kwargs)
        kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
        max_gen_toks = kwargs.pop("max_gen_toks")
        kwargs.pop("max_length", None)
        if not kwargs.get("do_sample"):
            kwargs.pop("temperature", None)
            kwargs["do_sample"] = False

        names_per_row = [_label_names(req) for req in requests]
        names = {n for row in names_per_row for n in row or ()}
        keep = self.max_length - (
            self._room_after_prompt(sorted(names), max_gen_toks, options) if names else max_gen_toks
        )
        if keep < 1:
            raise ValueError(
                f"hf-mlc: max_length {self.max_length} leaves no room for the prompt after "
                f"{max_gen_toks} generated tokens and label scoring; lower max_gen_toks or "
                "raise max_length."
            )
        contexts = [req.args[0] for req in requests]
        context_enc, attn = self.tok_batch_encode(contexts, truncation=self.truncation)
        n_truncated = int((attn.sum(dim=1) > keep).sum())
        context_enc, attn = context_enc[:, -keep:], attn[:, -keep:]
        context_enc, attn = context_enc.to(self.device), attn.to(self.device)
        ctx_len = context_enc.shape[1]
        measure = bool(names)
        with torch.no_grad(), self._autocast():
            out = self.model.generate(
                input_ids=context_enc,
                attention_mask=attn,
                max_length=ctx_len + max_gen_toks,
                stopping_criteria=stop_sequences_criteria(
                    self.tokenizer, until, ctx_len, context_enc.shape[0]
                ),
                pad_token_id=self.tokenizer.pad_token_id,
                use_cache=True,
                return_dict_in_generate=True,
                output_logits=measure,
                # A private full-attention cache (every layer keeps every position); a
                # configured static/hybrid cache would conflict with it.
                **(
                    {cache_argument(self.model): DynamicCache(), "cache_implementation": None}
                    if measure
                    else {}
                ),
                **kwargs,
            )
        texts: list[str] = []
        prepared: dict[int, _Prepared] = {}
        gen_rows = out.sequences[:, ctx_len:].tolist()
        for row, row_names in enumerate(names_per_row):
            gen_ids = gen_rows[row]
            if not row_names:
                texts.append(self._hf_text(gen_ids, until))
                continue
            pad = int((attn[row] == 0).sum())
            answer = self._read_answer(gen_ids, context_enc[row, pad:].tolist(), until)
            texts.append(answer.text)
            prepared[row] = self._label_steps(
                pad=pad,
                ctx_len=ctx_len,
                gen_ids=gen_ids,
                logits=[step[row] for step in out.logits[: answer.n_tokens]],
                prompt_ids=context_enc[row, pad:].tolist(),
                answer=answer,
                label_names=list(row_names),
                prune=options.prune,
            )
        if not prepared:
            return texts, n_truncated
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        rows = range(len(requests))
        with torch.no_grad(), self._autocast():
            scores = score_label_steps_rows(
                self.model,
                cache,
                [prepared[r].pad if r in prepared else 0 for r in rows],
                [prepared[r].steps if r in prepared else [] for r in rows],
            )
        for row, prep in prepared.items():
            payload = self._payload(prep, scores[row], options)
            if "marginal" in options.strategies and prep.root_logprobs is not None:
                result = self._marginal(
                    _row_cache(cache, row, len(requests)), prep.pad, ctx_len,
                    prep.root_logprobs, prep.label_names, until, max_gen_toks, options,
                    greedy=(gen_rows[row], [step[row] for step in out.logits]),
                )  # fmt: skip
                payload["strategies"]["marginal"] = np.clip(result.probs, 0, 1).tolist()
                payload["marginal_unexplored"] = min(result.unexplored, 1.0)
            if "sampled" in options.strategies:
                shares, ci = self._sampled(
                    context_enc[row, prep.pad :], prep.label_names, until, max_gen_toks, options
                )
                payload["strategies"]["sampled"] = shares
                payload["sampled_ci"] = ci
            texts[row] = dump_payload(payload)
        return texts, n_truncated

    def _autocast(self) -> contextlib.AbstractContextManager:
        """`hf`'s mixed precision (`mixed_precision_dtype`), on every forward we make."""
        dtype = self.mixed_precision_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _hf_text(self, gen_ids: list[int], until: Sequence[str]) -> str:
        """The answer exactly as `hf` returns it: thinking dropped, special tokens skipped,
        cut at the first stop sequence."""
        think = self.think_end_token
        if isinstance(think, int) and think in gen_ids:
            gen_ids = gen_ids[len(gen_ids) - gen_ids[::-1].index(think) :]
        text = self.tok_decode(gen_ids)
        if isinstance(think, int):
            text = text.lstrip()
        return postprocess_generated_text(
            text, list(until), think if isinstance(think, str) else None
        )

    def _read_answer(
        self, gen_ids: list[int], prompt_ids: list[int], until: Sequence[str]
    ) -> _Answer:
        """Where the answer lies in the generated tokens, read as `hf` reads it."""
        end = next((i for i, t in enumerate(gen_ids) if t in self._eos_ids), len(gen_ids))
        ids = gen_ids[:end]
        previous = prompt_ids[-1:]
        offsets = [
            len(continuation_text(self.tokenizer, ids[:i], previous)) for i in range(len(ids) + 1)
        ]
        internal = continuation_text(self.tokenizer, ids, previous)
        start = 0
        think = self.think_end_token
        if isinstance(think, int) and think in ids:
            start = offsets[len(ids) - ids[::-1].index(think)]
        elif isinstance(think, str) and think in internal:
            start = internal.rindex(think) + len(think)
        start += len(internal[start:]) - len(internal[start:].lstrip())
        cut = min(
            (internal.find(s, start) for s in until if s and s in internal[start:]),
            default=len(internal),
        )
        n_tokens = sum(1 for i in range(len(ids)) if offsets[i] < cut)
        return _Answer(self._hf_text(gen_ids, until), internal, offsets, (start, cut), n_tokens)

    # ------------------------------------------------------------------ measurements
    def _label_steps(
        self,
        *,
        pad: int,
        ctx_len: int,
        gen_ids: list[int],
        logits: list[torch.Tensor],
        prompt_ids: list[int],
        answer: _Answer,
        label_names: list[str],
        prune: float,
    ) -> _Prepared:
        """Where labels start in one answer, and the sequences that spell them (no forward)."""
        n = answer.n_tokens
        # A broken checkpoint's NaN/inf logits: count the steps, then read NaN log-probs as
        # -inf (no mass) and non-finite raw logits as 0 (no evidence), so every probability
        # stays finite and in [0, 1] and the payload stays valid JSON.
        raw = torch.stack(logits).float() if n else torch.zeros(0)
        nonfinite = int((~torch.isfinite(raw)).any(dim=-1).sum()) if n else 0
        if n:
            lse = torch.logsumexp(raw, dim=-1)
            chosen = raw.gather(1, torch.tensor(gen_ids[:n], device=raw.device)[:, None])[:, 0]
            chosen_lp = torch.nan_to_num(chosen - lse, nan=-torch.inf).tolist()
        prep = _Prepared(
            text=answer.text,
            label_names=label_names,
            pad=pad,
            nonfinite=nonfinite,
            root_logprobs=_logprobs(raw[0]) if n else None,
        )
        start, cut = answer.region
        region = answer.internal[start:cut]
        spans = [
            LabelSpan(s.start + start, s.end + start, s.label, s.quote)
            for s in label_spans(region, label_names)
        ] or _virtual_span(region, start)
        prompt_tail = continuation_text(self.tokenizer, prompt_ids[-8:], prompt_ids[-9:-8])
        offsets, internal = answer.offsets, answer.internal
        for span in spans:
            candidates = [i for i in range(n) if offsets[i] <= span.start]
            if not candidates:
                continue
            t = max(candidates)
            lead = internal[offsets[t] : span.start] + (span.quote if span.label < 0 else "")
            context = (prompt_tail + internal[: offsets[t]])[-CONTEXT_CHARS:]
            generated = None
            if span.label >= 0:
                e = max(i for i in range(n) if offsets[i] < span.end)
                covered = internal[span.start : offsets[e + 1]]
                tail = internal[span.end : offsets[e + 1]]
                closed = bool(tail.strip()) and closes_item(span.quote, tail, at_end=False)
                generated = (tuple(gen_ids[t : e + 1]), closed, covered)
            step, match, pruned = self._step(
                t=t, pad=pad, ctx_len=ctx_len, raw=raw[t], context=context, lead=lead,
                label_names=label_names, label=span.label, generated=generated, quote=span.quote,
                prune=prune,
            )  # fmt: skip
            prep.steps.append(step)
            prep.step_labels.append(span.label)
            prep.token_indices.append(t)
            prep.path_logp.append(float(sum(chosen_lp[:t])))
            prep.tokens_match.append(match)
            prep.pruned.append(pruned)
        return prep

    def _step(
        self,
        *,
        t: int,
        pad: int,
        ctx_len: int,
        raw: torch.Tensor,
        context: str,
        lead: str,
        label_names: Sequence[str],
        label: int,
        generated: tuple[tuple[int, ...], bool, str] | None,
        quote: str,
        prune: float,
    ) -> tuple[LabelStep, bool | None, float]:
        """One step's sequences: every label's case variants in context, plus what was written,
        less the variants `prune_spellings` drops; the largest per-label bound of those."""
        variants = [
            (i, lead + v) for i, name in enumerate(label_names) for v in case_variants(name)
        ]
        texts = [text for _, text in variants]
        if generated is not None:
            texts.append(lead + generated[2])
        split = self._split_in_context(context, texts)
        # (label, ids) -> closed; a label's first variant (as listed) is its canonical spelling.
        sequences: dict[tuple[int, tuple[int, ...]], bool] = {}
        canonical: dict[int, tuple[int, ...]] = {}
        for (owner, _), ic in zip(variants, split, strict=False):
            if ic.ids:
                sequences.setdefault((owner, ic.ids), False)
                canonical.setdefault(owner, ic.ids)
        match: bool | None = None
        if generated is not None:
            ids, closed, _ = generated
            match = ids == split[-1].ids
            sequences[(label, ids)] = sequences.get((label, ids), False) or closed
        keys = list(sequences)
        protected = {(i, ids) for i, ids in canonical.items()}
        if generated is not None:
            protected.add((label, generated[0]))
        logprobs = _logprobs(raw)
        kept, bound = prune_spellings(
            [ids for _, ids in keys], [owner for owner, _ in keys],
            [key in protected for key in keys], logprobs, prune, len(label_names),
        )  # fmt: skip
        keys = [keys[i] for i in kept]
        index = {key: i for i, key in enumerate(keys)}
        token_text = self._vocab_text()
        step = LabelStep(
            boundary=ctx_len + t,
            position=ctx_len + t - pad,
            prefix_logprobs=logprobs,
            prefix_logits=torch.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0),
            sequences=[ids for _, ids in keys],
            owners=[owner for owner, _ in keys],
            closed=[sequences[key] for key in keys],
            first_depths=[_first_depth(ids, lead, token_text) for _, ids in keys],
            canonical=[index[(i, canonical[i])] for i in range(len(label_names))],
            terminators=self._terminators(quote),
        )  # fmt: skip
        return step, match, float(bound.max(initial=0.0))

    def _split_in_context(self, context: str, texts: Sequence[str]) -> list[InContext]:
        """In-context token ids of each text after `context`, cached per (context, text)."""
        missing = [t for t in dict.fromkeys(texts) if (context, t) not in self._in_context]
        if missing:
            for text, ic in zip(
                missing, label_token_ids_batch(self.tokenizer, context, missing), strict=True
            ):
                self._in_context[(context, text)] = ic
        return [self._in_context[(context, t)] for t in texts]

    def _payload(
        self, prep: _Prepared, scores: Sequence[StepScores], options: MlcOptions
    ) -> dict[str, Any]:
        """The payload of one answer from its scored label steps (`marginal` added after)."""
        n_labels = len(prep.label_names)
        shape = (len(scores), n_labels)

        def stack(name: str, fill: float) -> np.ndarray:
            rows = [getattr(s, name) for s in scores]
            return np.stack(rows) if rows else np.full(shape, fill)

        complete = np.nan_to_num(stack("complete", -np.inf), nan=-np.inf)
        first = np.nan_to_num(stack("first_logp", -np.inf), nan=-np.inf)
        strategies = step_strategies(complete, prep.step_labels, prep.path_logp, n_labels)
        return {
            "text": prep.text,
            "labels": prep.label_names,
            "steps": step_records(
                complete,
                first,
                stack("first_logit", np.nan),
                stack("first_node", -1),
                prep.step_labels,
                prep.token_indices,
                prep.label_names,
                prep.tokens_match,
                prep.pruned,
            ),  # fmt: skip
            "strategies": {k: v for k, v in strategies.items() if k in options.strategies},
            "options": options.as_dict(),
            "nonfinite_steps": prep.nonfinite,
        }

    def _marginal(
        self, cache, pad, ctx_len, root_logprobs, label_names, until, max_gen_toks, options,
        greedy: tuple[list[int], list[torch.Tensor]] | None = None,
    ):  # fmt: skip
        """The tree search from the prompt. A path stops as generation stops (an EOS id, a stop
        sequence, `max_gen_toks` tokens); one still running at the search depth
        (`mlc_max_new_tokens`, default `max_gen_toks`) counts as unexplored. EOS ids read as a
        line break to the detector, so a label right before EOS is complete.

        `cache` holds the prompt (left-padded by `pad`) and, after it, the generated tokens that
        generation fed; `greedy` = (generated ids, per-step logits): the search reuses them for
        the nodes on the greedy path instead of recomputing them."""
        token_text = self._marginal_text()
        variants = [
            sorted(
                {ic.ids for ctx in ('["', '", "', ", ", " ", "\n") for ic in
                 self._split_in_context(ctx, case_variants(name)) if ic.ids}
            )
            for name in label_names
        ]  # fmt: skip
        detector = LabelDetector(variants, token_text)
        stop_ids = self._eos_ids
        stops = [s for s in until if s]

        def is_final(path: Sequence[int]) -> bool:
            if path[-1] in stop_ids or len(path) >= max_gen_toks:
                return True
            tail = "".join(token_text[t] for t in path[-8:])
            return any(s in tail for s in stops)

        cache_len = int(cache.get_seq_length())
        prompt_allowed = torch.zeros(cache_len, dtype=torch.bool)
        prompt_allowed[pad:ctx_len] = True  # generated keys: only for the nodes they lie on
        # Generated token j sits at cache index ctx_len + j with position id ctx_len - pad + j.
        positions = (torch.arange(cache_len) - pad).clamp(min=0)
        known = {}
        if greedy is not None:
            gen_ids, logits = greedy
            for k in range(1, min(cache_len - ctx_len, len(logits) - 1) + 1):
                known[tuple(gen_ids[:k])] = (ctx_len + k - 1, logits[k])
        expander = cached_expander(
            self.model, cache, prompt_allowed, ctx_len - pad, options.tree_batch_size,
            prompt_positions=positions, known=known,
        )  # fmt: skip
        with torch.no_grad(), self._autocast():
            return tree_marginal(
                root_logprobs,
                expander,
                detector,
                len(label_names),
                is_final=is_final,
                top_p=options.top_p,
                eps=options.eps,
                max_new_tokens=options.max_new_tokens or max_gen_toks,
            )

    def _sampled(
        self,
        prompt: torch.Tensor,
        label_names: Sequence[str],
        until: Sequence[str],
        max_gen_toks: int,
        options: MlcOptions,
    ) -> tuple[list[float], list[list[float]]]:
        """P(label appears in the answer), estimated as the share of `mlc_samples` answers
        sampled from the model's own distribution (temperature 1, no top-k/top-p, the task's
        stop rules and `max_gen_toks`) in which the answer parser finds it, with 95 % Wilson
        intervals. Unbiased where the tree search only bounds.

        The prompt is prefilled once (batch of one: no other doc's padding changes it) and its
        KV is shared, not copied: at every step the running samples' last tokens are fed as
        tree nodes after it, each seeing the prompt and its own earlier tokens. Draws come
        from a generator seeded per doc (`mlc_seed`), so reruns and other batchings agree.
        NaN logits (a broken checkpoint) read as no mass; a step with none left draws
        uniformly."""
        n = options.samples
        text = self._vocab_text()
        stops = [s for s in until if s]
        cache = DynamicCache()  # full attention on every layer, as for label scoring
        generator = torch.Generator(device=self.device).manual_seed(options.seed)
        with torch.no_grad(), self._autocast():
            logits = self.model(
                input_ids=prompt[None], use_cache=True, **{cache_argument(self.model): cache}
            ).logits[0, -1]
            expand = cached_expander(
                self.model, cache, torch.ones(len(prompt), dtype=torch.bool), len(prompt),
                max(n, 1),
            )  # fmt: skip
            root = Node((), 1.0)
            running = [root] * n
            logprobs = [torch.log_softmax(logits.float(), dim=-1).cpu()] * n
            answers: list[tuple[int, ...]] = []
            while running:
                p = torch.nan_to_num(torch.stack(logprobs).exp(), nan=0.0)
                p[p.sum(dim=-1) <= 0] = 1.0
                tokens = torch.multinomial(p.to(self.device), 1, generator=generator)[:, 0]
                children = []
                for node, token in zip(running, tokens.tolist(), strict=True):
                    child = Node(node.tokens + (token,), 1.0, parent=node)
                    tail = "".join(text[t] if t < len(text) else "" for t in child.tokens)
                    if (token in self._eos_ids or len(child.tokens) >= max_gen_toks
                            or any(s in tail for s in stops)):  # fmt: skip
                        answers.append(child.tokens)
                    else:
                        children.append(child)
                running = children
                logprobs = expand(running) if running else []
        counts = np.zeros(len(label_names), dtype=int)
        index = {name: i for i, name in enumerate(label_names)}
        for ids in answers:
            for name in parse_labels(self._hf_text(list(ids), until), label_names).labels:
                counts[index[name]] += 1
        cis = [binomtest(int(k), n).proportion_ci(0.95, method="wilson") for k in counts]
        return (counts / n).tolist(), [[ci.low, ci.high] for ci in cis]

    def _marginal_text(self) -> list[str]:
        """`_vocab_text` with every EOS id read as a line break, for the marginal's detector
        (cached: the search of every doc reads it)."""
        if self._detector_text is None:
            text = list(self._vocab_text())
            for i in self._eos_ids:
                if i < len(text):
                    text[i] = "\n"
            self._detector_text = text
        return self._detector_text

    def _vocab_text(self) -> list[str]:
        """Text of every token id as it reads mid-sequence (cached)."""
        if self._token_text is None:
            size = self.model.get_output_embeddings().weight.shape[0]
            self._token_text = token_texts(self.tokenizer, size)
        return self._token_text

    def _terminators(self, quote: str) -> torch.Tensor:
        """Tokens that end a label item opened with `quote` ("" unquoted), and every EOS id."""
        if quote not in self._terminator_masks:
            text = self._vocab_text()
            mask = torch.tensor([bool(t) and closes_item(quote, t, at_end=False) for t in text])
            ids = [i for i in self._eos_ids if i < len(text)]
            mask[ids] = True
            self._terminator_masks[quote] = mask
        return self._terminator_masks[quote]


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with `prefix` (a summary replaces them)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _label_names(request: Instance) -> list[str] | None:
    """The label set the doc of a request carries (None: not a multi-label request)."""
    doc = request.doc
    return doc.get("label_names") if isinstance(doc, dict) else None


def _logprobs(logits: torch.Tensor) -> torch.Tensor:
    """log-softmax of one position's logits, NaN read as -inf (no mass)."""
    return torch.nan_to_num(torch.log_softmax(logits.float(), dim=-1), nan=-torch.inf)


def _first_depth(ids: Sequence[int], lead: str, token_text: Sequence[str]) -> int:
    """1-based index of the first token of `ids` that holds label characters past `lead`."""
    length = 0
    for depth, token in enumerate(ids, start=1):
        length += len(token_text[token]) if token < len(token_text) else 0
        if length > len(lead):
            return depth
    return 0


def _virtual_span(region: str, start: int) -> list[LabelSpan]:
    """Where a first label would have started when none was generated (after '['), if any."""
    bracket = region.find("[")
    return [LabelSpan(start + bracket + 1, start + bracket + 1, -1, '"')] if bracket >= 0 else []


def _row_cache(cache: DynamicCache, row: int, batch: int) -> DynamicCache:
    """Batch-size-1 copy of one row of a generation cache (the cache itself when batch is 1)."""
    check_full_cache(cache, int(cache.get_seq_length()))
    if batch == 1:
        return cache
    single = DynamicCache()
    for layer_idx, layer in enumerate(cache.layers):
        single.update(layer.keys[row : row + 1], layer.values[row : row + 1], layer_idx)
    return single
