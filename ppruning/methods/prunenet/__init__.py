"""PruneNet (Sengupta et al., ICLR 2025): calibration-free FFN slicing by a learned policy.

``policy`` (the policy, its spectral reward, one REINFORCE episode), ``params``; ``method``
trains the policy on the weights, slices the FFN and registers the method.
"""

from ppruning.methods.prunenet import method  # noqa: F401 - registers the method
