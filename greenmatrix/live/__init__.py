"""Post-deployment decisions, pure: observations come in as values and `now` is an argument.

`observations` holds the series a running deployment produces; `anomalies` judges each point from the
points up to it; `forecast` gives the demand ahead with its interval (`seasonality` finds the period it
uses); `calibration` corrects predicted latency by what the deployment is seen doing; `decide` sizes
replicas from capacity and the forecast's upper quantile, and `guardrails` applies the policy after the
estimate; `hardware` says whether another GPU type or precision would serve better; `verification` says
whether an action did what it predicted; `assess` is one evaluation (anomalies, forecast, decision,
guardrails) on carried states, so each adds only the new rows; `replay` runs it all over a demand trace
beside the HPA.
"""
