"""The predictors the planner asks: the learned models, loaded once, with physics fallbacks."""
