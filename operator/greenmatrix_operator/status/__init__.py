"""What the operator writes into statuses.

- `conditions`: condition types and reasons, which reason each outcome gets, transition times.
- `evaluation`: engine results laid out as status fields (no decisions, no I/O).
"""
