"""`hf-mlc`: lm-eval's HF model, registered under our name for multi-label tasks.

It keeps every argument of `HFLM` (`pretrained`, `gguf_file`, `dtype`, `device`, `batch_size`,
chat templates, `parallelize`, `accelerate launch`). Generation is the stock greedy path today,
so its results equal `--model hf`; per-step label distributions and marginal label
probabilities are added on this class without changing how it is called.
"""

from __future__ import annotations

import lm_eval.models  # noqa: F401  (register lm-eval's own models before ours; see plugin.py)
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM


@register_model("hf-mlc")
class HFMultiLabelLM(HFLM):
    """Hugging Face causal LM for multi-label classification tasks."""
