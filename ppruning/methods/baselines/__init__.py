"""The structured baselines every benchmark compares against: ``random`` and ``magnitude``."""

from ppruning.methods.baselines import magnitude, random_units  # noqa: F401 - each registers its method
