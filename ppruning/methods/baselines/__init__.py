"""The structured baselines every benchmark compares against: ``random`` and ``magnitude``, and the
decoder baselines from the LLM literature: ``wanda-sp``, ``flap`` and ``shortgpt``."""

from ppruning.methods.baselines import flap, magnitude, random_units, shortgpt, wanda_sp  # noqa: F401 - each registers its method
