"""Self-checks of emofuse against hostile input: `corpus` makes bad and unusual media files by
code, `bad_inputs` runs them through a `emofuse.inference.predictor.Predictor` and counts the outcomes
(``python -m emofuse.diagnostics.bad_inputs``, see docs/robustness.md)."""
