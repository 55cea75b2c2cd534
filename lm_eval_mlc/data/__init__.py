"""Data loaders for the multi-label tasks and the validation errors they raise."""

from lm_eval_mlc.data._docs import with_eval_split, with_label_names
from lm_eval_mlc.data._errors import DataProblem, DataValidationError
from lm_eval_mlc.data.goemotions import load_goemotions

__all__ = [
    "DataProblem",
    "DataValidationError",
    "load_goemotions",
    "with_eval_split",
    "with_label_names",
]
