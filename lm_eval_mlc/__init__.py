"""Multi-label classification for lm-evaluation-harness: tasks, metrics and the `hf-mlc` model."""

__version__ = "0.1.0"
