"""Prompts that may not fit: `hf-mlc`'s context-room check and truncation (a mixin).

Generation needs room for the answer and the label-scoring tokens after the prompt; by default a
prompt without it is refused before any generation, with `mlc_truncation=left` it is cut from
the left with one warning. Unary tasks' scoring keeps `HFLM`'s, its per-request warnings merged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import (
    normalize_gen_kwargs,
)

from lm_eval_mlc.harness._answers import _DropMessages, _label_names
from lm_eval_mlc.harness.options import MlcOptions

logger = logging.getLogger(__name__)


class PromptRoomMixin:
    """Room for the answer after the prompt, checked once per batch."""

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
