"""Data loaders for the multi-label tasks and the validation errors they raise."""

from lm_eval_mlc.data._docs import with_eval_split, with_label_names
from lm_eval_mlc.data._errors import DataProblem, DataValidationError
from lm_eval_mlc.data.content_safety import load_content_safety
from lm_eval_mlc.data.convabuse import load_convabuse
from lm_eval_mlc.data.goemotions import load_goemotions
from lm_eval_mlc.data.semeval import load_semeval2018_ec

__all__ = [
    "DataProblem",
    "DataValidationError",
    "load_content_safety",
    "load_convabuse",
    "load_goemotions",
    "load_semeval2018_ec",
    "with_eval_split",
    "with_label_names",
]
