"""`python -m lm_eval_mlc.cli`: the same as `lm-eval-mlc`."""

from lm_eval_mlc.cli import main

main()
