"""Reading what lm-eval wrote (`--output_path ... --log_samples`): leaderboards with bootstrap
intervals, the CI gate, figures, calibration, decision rules and the probe's report."""
