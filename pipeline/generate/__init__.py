"""Synthetic data generators with planted violations and their ground truth, for tests, demos and benchmarks."""
