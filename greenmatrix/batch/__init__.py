"""Batch prediction over CSV files (`greenmatrix predict --dataset ...`), one module per dataset."""
