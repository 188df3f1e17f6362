"""Physics of AI workloads on hardware: rooflines for LLM serving, benchmarks and training.

Pure functions of catalog specs and workload shapes; the learned models in `greenmatrix.learned`
correct them against measurements.
"""
