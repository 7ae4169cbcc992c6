"""The structured baselines every benchmark compares against: ``random`` and ``magnitude``, and the
decoder baselines from the LLM literature: ``wanda-sp`` and ``flap``."""

from ppruning.methods.baselines import flap, magnitude, random_units, wanda_sp  # noqa: F401 - each registers its method
