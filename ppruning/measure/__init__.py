"""Measuring a model: speed (paired timings of dense and pruned) and task scores."""
