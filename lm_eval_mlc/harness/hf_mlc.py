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
from tqdm import tqdm
from transformers import DynamicCache

from lm_eval_mlc.core.payload import dump_payload
from lm_eval_mlc.harness._answers import _label_names, _Prepared, _row_cache
from lm_eval_mlc.harness.any_place import AnyPlaceMixin
from lm_eval_mlc.harness.label_steps import LabelStepsMixin
from lm_eval_mlc.harness.options import MlcOptions
from lm_eval_mlc.harness.prompt_room import PromptRoomMixin
from lm_eval_mlc.scoring.label_scoring import score_label_steps_rows
from lm_eval_mlc.scoring.tokenization import InContext, eos_token_ids
from lm_eval_mlc.scoring.tree_attention import cache_argument, check_attention_implementation

logger = logging.getLogger(__name__)


@register_model("hf-mlc")
class HFMultiLabelLM(PromptRoomMixin, LabelStepsMixin, AnyPlaceMixin, HFLM):
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
