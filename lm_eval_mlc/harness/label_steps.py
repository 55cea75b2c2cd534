"""Reading a generated answer into label steps and scoring every label at each (`hf-mlc`).

A mixin of :class:`lm_eval_mlc.harness.hf_mlc.HFMultiLabelLM`: it uses the model, tokenizer and
caches of lm-eval's `HFLM`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lm_eval_mlc.core.item_ends import closes_item
from lm_eval_mlc.core.matching import LabelSpan, label_spans
from lm_eval_mlc.core.strategies import step_records, step_strategies
from lm_eval_mlc.harness._answers import (
    _Answer,
    _first_depth,
    _logprobs,
    _Prepared,
    _virtual_span,
)
from lm_eval_mlc.harness.options import CONTEXT_CHARS, MlcOptions, case_variants
from lm_eval_mlc.scoring.label_scoring import (
    LabelStep,
    StepScores,
    prune_spellings,
)
from lm_eval_mlc.scoring.tokenization import (
    InContext,
    continuation_text,
    label_token_ids_batch,
)

logger = logging.getLogger(__name__)


class LabelStepsMixin:
    """Label steps of an answer, their scores and the payload."""

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
