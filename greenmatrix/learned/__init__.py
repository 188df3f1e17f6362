"""Learned corrections on top of physics, as the predictors apply them at run time.

`core` loads a fitted correction and applies it, `conformal` and `novelty` give its intervals, and
`serving`, `mlperf_inference` and `training_time` are the three predictors. Fitting, scoring and
writing the models is offline work in `greenmatrix.learned.fitting`, which nothing here imports.
"""
