"""Offline only: fitting the learned models from the reference data, scoring them, writing their cards.

Nothing the operator or the planner loads imports this package: `greenmatrix.learned` applies the
fitted models, this package makes them (`greenmatrix train`, `greenmatrix bench accuracy`).
"""
