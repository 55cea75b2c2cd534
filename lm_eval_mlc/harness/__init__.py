"""Everything that imports lm-eval: the `hf-mlc` model (a thin shell over `scoring/`), the
per-doc records and aggregations the task YAMLs name, filters, few-shot sampling, unary
prompting, request-cache keys and the plugin's registration with the harness."""
