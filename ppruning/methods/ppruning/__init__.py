"""P-pruning (Wang et al., LREC-COLING 2024): the paper's steps, one module each.

``params`` (what a user sets) -> ``collect`` (unit outputs at sampled tokens) ->
``similarity`` (per-layer distances) -> ``cluster`` (complete linkage, cut) -> ``select``
(one centroid per cluster); ``method`` runs them in order and registers the method.
"""

from ppruning.methods.ppruning import method  # noqa: F401 - registers the method
