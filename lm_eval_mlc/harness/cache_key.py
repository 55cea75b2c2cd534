"""Key lm-eval's request cache by model, so two models never share cached responses.

lm-eval's `--use_cache PATH` stores each response under a hash of the request alone (the prompt
and generation kwargs); the model is not part of the key. Running a second model with the same
`--use_cache` path would silently return the first model's answers. With this plugin loaded,
each model gets its own table in the cache file, named by a fingerprint of what decides its
outputs: the wrapper class, checkpoint name, config, dtype, context length, tokenizer and a
digest of some weights (so two checkpoints of one architecture differ). A rerun of the same
model finds its table again, which is what makes a killed run resumable.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from typing import Any

logger = logging.getLogger(__name__)

#: Plain attributes of non-HF wrappers (vLLM, API models) that name the model they call.
_NAME_ATTRS = ("pretrained", "model", "model_name", "base_url", "revision", "tokenizer_name")
#: Leading elements of the first and last parameter tensors hashed into the fingerprint.
_WEIGHT_SAMPLE = 65536


def model_fingerprint(lm: Any) -> str:
    """A stable 16-hex-digit digest of what determines `lm`'s responses."""
    parts: dict[str, Any] = {"class": f"{type(lm).__module__}.{type(lm).__qualname__}"}
    model = getattr(lm, "_model", None)
    if model is not None and hasattr(model, "config"):
        parts["config"] = model.config.to_json_string(use_diff=False)
        parts["name"] = getattr(model, "name_or_path", "")
        parts["dtype"] = str(getattr(model, "dtype", ""))
        parts["weights"] = _weights_digest(model)
    for attr in _NAME_ATTRS:
        value = getattr(lm, attr, None)
        if isinstance(value, str | int | float):
            parts[attr] = value
    if isinstance(getattr(lm, "model_args", None), dict):  # vLLM keeps its engine arguments
        parts["model_args"] = lm.model_args
    tokenizer = getattr(lm, "tokenizer", None)
    if tokenizer is not None:
        parts["tokenizer"] = [getattr(tokenizer, "name_or_path", ""), len(tokenizer)]
    for attr in ("max_length", "add_bos_token"):
        try:
            parts[attr] = getattr(lm, attr, None)
        except Exception:  # noqa: BLE001  (a property that needs a loaded model; not decisive)
            parts[attr] = None
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _weights_digest(model: Any) -> str:
    """Hash of the first elements of the first and last parameters (embeddings, head)."""
    params = [p for p in model.parameters() if p.device.type != "meta"]
    digest = hashlib.sha256()
    for param in params[:1] + params[-1:]:
        sample = param.detach().reshape(-1)[:_WEIGHT_SAMPLE].float().cpu().numpy()
        digest.update(sample.tobytes())
    return digest.hexdigest()


def table_name(lm: Any) -> str:
    """The cache-file table holding `lm`'s responses."""
    return f"lm_eval_mlc_{model_fingerprint(lm)}"


def key_cache_by_model(caching_lm_cls: type) -> None:
    """Patch `CachingLM.__init__` to keep each model's entries in its own table (idempotent)."""
    init = caching_lm_cls.__init__
    if getattr(init, "_lm_eval_mlc", False):
        return

    @functools.wraps(init)
    def __init__(self: Any, lm: Any, cache_db: str) -> None:
        from sqlitedict import SqliteDict

        init(self, lm, cache_db)
        self.dbdict.close()
        table = table_name(lm)
        self.dbdict = SqliteDict(cache_db, tablename=table, autocommit=True)
        lm.set_cache_hook(self.get_cache_hook())
        logger.info(f"lm-eval-mlc: request cache {cache_db}, table {table} (keyed by model)")

    __init__._lm_eval_mlc = True  # type: ignore[attr-defined]
    caching_lm_cls.__init__ = __init__
