"""`hf-mlc`: lm-eval's HF model that also measures label probabilities while it generates.

It keeps every argument of `HFLM` (`pretrained`, `gguf_file`, `dtype`, `device`, `batch_size`,
chat templates, `parallelize`, `accelerate launch`) and its greedy generation. For requests of a
multi-label task (docs carrying `label_names`) the response is a JSON payload
(`lm_eval_mlc.payload`) holding the generated text, the exact label distribution at every label
step and each strategy's P(label); other requests get plain text, exactly as from `hf`.

Cost: the prompt is prefilled once, by generation. All label steps of all docs of a batch are
then scored in one extra forward over their label tries, reusing the generation's KV cache; the
`marginal` tree search (opt-in) expands its frontier in batches over the same cache.

Hand-over: the label set travels in the doc (lm-eval passes each request's doc to the model, and
never to a backend), so the same task YAMLs run unchanged on `hf`, vLLM and API models, and the
prompt that lists the labels keys the request cache. Options travel as `mlc_*` generation
kwargs (part of the request-cache key), e.g. `--gen_kwargs mlc_strategies=all,mlc_top_p=0.95`;
`hf-mlc` removes them before calling `generate()`.
"""

from __future__ import annotations

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
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
from lm_eval.models.utils_hf import stop_sequences_criteria
from tqdm import tqdm
from transformers import DynamicCache

from lm_eval_mlc.label_spans import UNQUOTED_CLOSERS, LabelSpan, label_spans
from lm_eval_mlc.models.label_scoring import (
    LabelStep,
    check_full_cache,
    score_label_steps_rows,
)
from lm_eval_mlc.models.marginal import LabelDetector, cached_expander, tree_marginal
from lm_eval_mlc.payload import dump_payload
from lm_eval_mlc.step_distributions import STEP_STRATEGIES, step_records, step_strategies

logger = logging.getLogger(__name__)

ALL_STRATEGIES = ("generated", *STEP_STRATEGIES, "marginal")
DEFAULT_STRATEGIES = ("generated", *STEP_STRATEGIES)


@dataclass(frozen=True)
class MlcOptions:
    """Options of the label measurements, from `mlc_*` generation kwargs."""

    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    top_p: float = 0.99
    eps: float = 0.01
    max_new_tokens: int = 20
    threshold: float = 0.5
    tree_batch_size: int = 64

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
        kwargs = {k: type(getattr(cls(), k))(v) for k, v in raw.items() if k != "strategies"}
        return cls(**kwargs, **({"strategies": raw["strategies"]} if "strategies" in raw else {}))

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


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
    """One answer's label steps, before the batch's single label-scoring forward."""

    text: str
    label_names: list[str]
    pad: int  # left padding of its row in the generation batch
    nonfinite: int  # generated tokens whose logits had NaN/inf
    root_logprobs: torch.Tensor | None  # first generated token's log-probs (marginal search)
    steps: list[LabelStep] = field(default_factory=list)
    step_labels: list[int] = field(default_factory=list)
    token_indices: list[int] = field(default_factory=list)
    path_logp: list[float] = field(default_factory=list)
    first_logits: list[list[float]] = field(default_factory=list)


@register_model("hf-mlc")
class HFMultiLabelLM(HFLM):
    """Hugging Face causal LM that returns label-probability payloads for multi-label tasks."""

    _token_text: list[str] | None = None
    _terminator_masks: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ harness entry point
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Greedy generation, batched by identical generation kwargs, longest prompts first."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[repr(sorted(req.args[1].items()))].append(i)
        results: list[str | None] = [None] * len(requests)
        batch_size = self.batch_size if isinstance(self.batch_size, int) else 1
        pbar = tqdm(
            total=len(requests),
            disable=disable_tqdm or self.rank != 0,
            desc="Running generate_until requests (hf-mlc)",
        )
        truncated = 0
        for indices in groups.values():
            indices.sort(key=lambda i: -len(self.tok_encode(requests[i].args[0])))
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

        contexts = [req.args[0] for req in requests]
        context_enc, attn = self.tok_batch_encode(contexts, truncation=self.truncation)
        keep = self._prompt_room(requests, max_gen_toks, options)
        n_truncated = int((attn.sum(dim=1) > keep).sum())
        context_enc, attn = context_enc[:, -keep:], attn[:, -keep:]
        context_enc, attn = context_enc.to(self.device), attn.to(self.device)
        ctx_len = context_enc.shape[1]
        with torch.no_grad():
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
                output_logits=True,
                **kwargs,
            )
        logits = torch.stack(out.logits, dim=1).float()  # (B, T, V)
        logprobs = torch.log_softmax(logits, dim=-1)
        texts: list[str] = []
        prepared: dict[int, _Prepared] = {}
        for row, req in enumerate(requests):
            gen_ids = out.sequences[row, ctx_len:].tolist()
            text, n_tokens = self._cut(gen_ids, until)
            texts.append(text)
            names = _label_names(req)
            if names:
                prepared[row] = self._label_steps(
                    pad=int((attn[row] == 0).sum()),
                    ctx_len=ctx_len,
                    gen_ids=gen_ids[:n_tokens],
                    logits=logits[row, :n_tokens],
                    logprobs=logprobs[row, :n_tokens],
                    text=text,
                    label_names=list(names),
                )
        rows = range(len(requests))
        with torch.no_grad():
            scores = score_label_steps_rows(
                self.model,
                out.past_key_values,
                [prepared[r].pad if r in prepared else 0 for r in rows],
                [prepared[r].steps if r in prepared else [] for r in rows],
            )
        for row, prep in prepared.items():
            payload = self._payload(prep, *scores[row], options)
            if "marginal" in options.strategies and prep.root_logprobs is not None:
                result = self._marginal(
                    _row_cache(out.past_key_values, row, len(requests)), prep.pad, ctx_len,
                    prep.root_logprobs, prep.label_names, until, options,
                )  # fmt: skip
                payload["strategies"]["marginal"] = np.clip(result.probs, 0, 1).tolist()
                payload["marginal_unexplored"] = result.unexplored
            texts[row] = dump_payload(payload)
        return texts, n_truncated

    def _prompt_room(
        self, requests: Sequence[Instance], max_gen_toks: int, options: MlcOptions
    ) -> int:
        """Prompt tokens that fit: the context less generation and label-scoring positions.

        Label tries extend past the generated tokens by up to a label's length, and the
        `marginal` search by up to `mlc_max_new_tokens`; keeping their positions inside
        `max_length` avoids index errors in models with learned position embeddings.
        """
        names = {n for req in requests for n in _label_names(req) or ()}
        label_room = max(
            (len(self.tok_encode(' "' + n, add_special_tokens=False)) for n in names), default=0
        )
        after = max_gen_toks + label_room + 1
        if names and "marginal" in options.strategies:
            after = max(after, options.max_new_tokens + label_room + 1)
        keep = self.max_length - after
        if keep < 1:
            raise ValueError(
                f"hf-mlc: max_length {self.max_length} leaves no room for the prompt after "
                f"{max_gen_toks} generated tokens and {label_room} label tokens; lower "
                "max_gen_toks or raise max_length."
            )
        return keep

    def _cut(self, gen_ids: list[int], until: Sequence[str]) -> tuple[str, int]:
        """The answer text cut at the first stop string, and how many tokens it spans."""
        full = self.tok_decode(gen_ids, skip_special_tokens=False)
        cut = min((full.find(s) for s in until if s and s in full), default=len(full))
        n_tokens = len(gen_ids)
        while n_tokens > 0 and len(self.tok_decode(gen_ids[: n_tokens - 1], False)) >= cut:
            n_tokens -= 1
        return full[:cut], n_tokens

    # ------------------------------------------------------------------ measurements
    def _label_steps(
        self,
        *,
        pad: int,
        ctx_len: int,
        gen_ids: list[int],
        logits: torch.Tensor,
        logprobs: torch.Tensor,
        text: str,
        label_names: list[str],
    ) -> _Prepared:
        """Where labels start in one answer, and what scoring them needs (no forward yet)."""
        # A broken checkpoint's NaN/inf logits: count the steps, then read NaN log-probs as
        # -inf (no mass) and non-finite raw logits as 0 (no evidence), so every probability
        # stays finite and in [0, 1] and the payload stays valid JSON.
        nonfinite = int((~torch.isfinite(logits)).any(dim=-1).sum())
        logprobs = torch.nan_to_num(logprobs, nan=-torch.inf)
        logits = torch.nan_to_num(logits, nan=0.0, posinf=0.0, neginf=0.0)
        offsets = [len(self.tok_decode(gen_ids[:i], False)) for i in range(len(gen_ids) + 1)]
        spans = label_spans(text, label_names) or _virtual_span(text)
        prep = _Prepared(
            text=text,
            label_names=label_names,
            pad=pad,
            nonfinite=nonfinite,
            root_logprobs=logprobs[0] if len(gen_ids) else None,
        )
        chosen = [lp[t].item() for lp, t in zip(logprobs, gen_ids, strict=True)]
        for span in spans:
            t = max(i for i in range(len(gen_ids)) if offsets[i] <= span.start)
            lead = text[offsets[t] : span.start] + (span.quote if span.label < 0 else "")
            sequences = [
                self.tok_encode(lead + name, add_special_tokens=False) for name in label_names
            ]
            prep.steps.append(
                LabelStep(
                    boundary=ctx_len + t,
                    position=ctx_len + t - pad,
                    prefix_logprobs=logprobs[t],
                    sequences=sequences,
                    terminators=self._terminators(span.quote),
                )
            )
            prep.first_logits.append([logits[t, seq[0]].item() for seq in sequences])
            prep.step_labels.append(span.label)
            prep.token_indices.append(t)
            prep.path_logp.append(float(sum(chosen[:t])))
        return prep

    def _payload(
        self, prep: _Prepared, complete: np.ndarray, first: np.ndarray, options: MlcOptions
    ) -> dict[str, Any]:
        """The payload of one answer from its scored label steps (`marginal` added after)."""
        complete, first = np.nan_to_num(complete, nan=-np.inf), np.nan_to_num(first, nan=-np.inf)
        firsts = [seq[0] for seq in prep.steps[0].sequences] if prep.steps else []
        n_labels = len(prep.label_names)
        strategies = step_strategies(complete, prep.step_labels, prep.path_logp, n_labels)
        return {
            "text": prep.text,
            "labels": prep.label_names,
            "steps": step_records(
                complete,
                first,
                np.array(prep.first_logits),
                prep.step_labels,
                prep.token_indices,
                firsts,
                prep.label_names,
            ),  # fmt: skip
            "strategies": {k: v for k, v in strategies.items() if k in options.strategies},
            "options": options.as_dict(),
            "nonfinite_steps": prep.nonfinite,
        }

    def _marginal(self, cache, pad, ctx_len, root_logprobs, label_names, until, options):
        token_text = self._vocab_text()
        variants = [
            {tuple(self.tok_encode(v + name, add_special_tokens=False)) for v in ("", " ")}
            for name in label_names
        ]
        detector = LabelDetector([sorted(v) for v in variants], token_text)
        stop_ids = {self.eot_token_id}
        stops = [s for s in until if s]

        def is_final(path: Sequence[int]) -> bool:
            if path[-1] in stop_ids:
                return True
            tail = "".join(token_text[t] for t in path[-8:])
            return any(s in tail for s in stops)

        prompt_allowed = torch.zeros(ctx_len, dtype=torch.bool)
        prompt_allowed[pad:ctx_len] = True
        # Keep only the prompt of the generation cache: the search starts at the first token.
        extra = int(cache.get_seq_length()) - ctx_len
        if extra > 0:
            cache.crop(-extra)
        expander = cached_expander(
            self.model, cache, prompt_allowed, ctx_len - pad, options.tree_batch_size
        )
        with torch.no_grad():
            return tree_marginal(
                root_logprobs,
                expander,
                detector,
                len(label_names),
                is_final=is_final,
                top_p=options.top_p,
                eps=options.eps,
                max_new_tokens=options.max_new_tokens,
            )

    def _vocab_text(self) -> list[str]:
        """Decoded text of every token id (cached; ids past the tokenizer decode to '')."""
        if self._token_text is None:
            size = self.model.get_output_embeddings().weight.shape[0]
            n = len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[i] for i in range(min(n, size))])
            self._token_text = texts + [""] * (size - len(texts))
        return self._token_text

    def _terminators(self, quote: str) -> torch.Tensor:
        """Tokens that end a label: the closing quote, or a delimiter/bracket/EOS if unquoted."""
        if self._terminator_masks is None:
            self._terminator_masks = {}
        if quote not in self._terminator_masks:
            closers = quote or UNQUOTED_CLOSERS
            text = self._vocab_text()
            mask = torch.tensor([t[:1] != "" and t[:1] in closers for t in text])
            if not quote:
                mask[self.eot_token_id] = True
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


def _virtual_span(text: str) -> list[LabelSpan]:
    """Where a first label would have started when none was generated (after '['), if any."""
    bracket = text.find("[")
    return [LabelSpan(bracket + 1, -1, '"')] if bracket >= 0 else []


def _row_cache(cache: DynamicCache, row: int, batch: int) -> DynamicCache:
    """Batch-size-1 copy of one row of a generation cache (the cache itself when batch is 1)."""
    check_full_cache(cache, int(cache.get_seq_length()))
    if batch == 1:
        return cache
    single = DynamicCache()
    for layer_idx, layer in enumerate(cache.layers):
        single.update(layer.keys[row : row + 1], layer.values[row : row + 1], layer_idx)
    return single
