"""SMP, static model pruning (Jiang et al., ACL 2023), and its unstructured magnitude baseline.

``scores`` (top-k masks on learned scores, ramps, SMP-S budgets), ``classifier`` (the MLM
head at the label words, or a new classifier), ``training`` (the loop both methods share),
``params``; ``method`` registers ``smp``, ``magnitude`` registers ``magnitude-unstructured``.
"""

from ppruning.methods.smp import magnitude, method  # noqa: F401 - each registers its method
