"""Post-deployment decisions, pure: observations come in as values and `now` is an argument.

`observations` holds the series a running deployment produces; `anomalies` judges each point from the
points up to it; `forecast` gives the demand ahead with its interval (`seasonality` finds the period it
uses); `hardware` says whether another GPU type or precision would serve better; `verification` says
whether an action did what it predicted.
"""
