"""Predictive scores: a model trained on past behaviour writes `scores.<name>` (0..1) per
profile, which the filter language reads like any other number (see docs/scores.md)."""
