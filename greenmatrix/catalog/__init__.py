"""Catalogs: hardware specs, precisions, prices and grid carbon intensity, derived from the shared
reference data by `greenmatrix.catalog.build` and shipped as JSON in `greenmatrix/catalog/data/`."""
