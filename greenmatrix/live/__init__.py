"""Post-deployment decisions: pure, with `now` and the observations passed in."""
