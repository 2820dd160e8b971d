"""Evaluation, one room: `metrics` (the TOFU formulas and batched model scores), `full` (one full
TOFU evaluation of a model and the retain model's cached truth ratios), `run` (the per-epoch
evaluation of an unlearning run: TOFU metrics plus token-level probability drops) and
`selector_report` (how well selectors find the ground-truth fact spans).

Import the module you need (`from engine.eval.full import evaluate`); this package imports
nothing eagerly.
"""
