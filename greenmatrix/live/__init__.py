"""Post-deployment decisions, pure: observations come in as values and `now` is an argument.

`observations` holds the series a running deployment produces, `forecast` the demand forecast with
its interval and `seasonality` the period detector it uses.
"""
