"""Evaluation, one room: `metrics` (the TOFU formulas and batched model scores), `full` (one full
TOFU evaluation of a model and the retain model's cached truth ratios and MIA numbers), `run` (the
per-epoch evaluation of an unlearning run: TOFU metrics plus token-level probability drops),
`memorization` (extraction strength, exact memorisation), `mia` (membership-inference attack
scores, AUC, privleak), `privacy` (their model work: token statistics from the evaluation's pass,
gradient norms, the retain model's numbers), `registry` (every metric by name: label, direction,
what it needs, an optional compute hook) and `selector_report` (how well selectors find the
ground-truth fact spans).

Import the module you need (`from engine.eval.full import evaluate`); this package imports
nothing eagerly.
"""
