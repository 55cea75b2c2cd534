"""The pure model of the domain: how answers, labels and their places in the text relate.

Everything under `lm_eval_mlc.core` is pure Python (NumPy at most) and imports no torch,
transformers or lm-eval, so it can be read, tested and reused without a model or the harness;
`tests/test_matching.py` checks that rule. The layers above (`models/`, the harness glue)
import from here, never the other way round.

* `matching`: the one normaliser, splitter and matcher that both the answer parser and the
  step finder of `hf-mlc` use.
"""
