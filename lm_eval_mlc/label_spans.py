"""Where labels start in a generated answer: the old import path of the step finder.

The step finder now lives in :mod:`lm_eval_mlc.core.matching`, beside the answer parser it
shares every rule with; this module only re-exports it. Import from there in new code.
"""

from lm_eval_mlc.core.matching import UNQUOTED_CLOSERS, LabelSpan, closes_item, label_spans

__all__ = ["UNQUOTED_CLOSERS", "LabelSpan", "closes_item", "label_spans"]
