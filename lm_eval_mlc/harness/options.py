"""`hf-mlc`'s options (`mlc_*` generation kwargs) and the label spellings it scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lm_eval_mlc.core import registry

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

    strategies: tuple[str, ...] = registry.DEFAULT_STRATEGIES
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
        return registry.STRATEGY_NAMES
    bad = [n for n in names if n not in registry.STRATEGY_NAMES]
    if bad:
        raise ValueError(
            f"Expected mlc_strategies among {registry.STRATEGY_NAMES} or 'all', but got {bad}."
        )
    return tuple(dict.fromkeys(["generated", *names]))
