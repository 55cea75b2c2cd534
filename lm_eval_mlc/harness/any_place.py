"""The any-place strategies of `hf-mlc`: `marginal` (tree search) and `sampled` (draws).

A mixin of :class:`lm_eval_mlc.harness.hf_mlc.HFMultiLabelLM`: both reuse the greedy pass's KV
cache of the prompt (see :mod:`lm_eval_mlc.scoring.marginal`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import binomtest
from transformers import DynamicCache

from lm_eval_mlc.core.item_ends import closes_item
from lm_eval_mlc.core.matching import parse_labels
from lm_eval_mlc.harness.options import MlcOptions, case_variants
from lm_eval_mlc.scoring.marginal import LabelDetector, Node, cached_expander, tree_marginal
from lm_eval_mlc.scoring.tokenization import (
    token_texts,
)
from lm_eval_mlc.scoring.tree_attention import cache_argument

logger = logging.getLogger(__name__)


class AnyPlaceMixin:
    """`marginal` and `sampled` over one prompt's cache."""

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
