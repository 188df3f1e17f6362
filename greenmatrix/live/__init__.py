"""Post-deployment decisions, pure: observations and `now` are arguments."""
