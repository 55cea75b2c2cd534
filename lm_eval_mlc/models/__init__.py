"""Model wrappers registered with lm-eval (imported lazily through the registry)."""
