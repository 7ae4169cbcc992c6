"""SMP, static model pruning (Jiang et al., ACL 2023), and its unstructured magnitude baselines.

``scores`` (top-k masks on learned scores, ramps, SMP-S budgets), ``schedule`` (the
authors' run length, hold, lambda and learning-rate decay), ``validation`` (the best
checkpoint of the hold), ``classifier`` (the MLM head at the label words, or a new
classifier), ``training`` (the loop the methods share), ``params``; ``method`` registers
``smp``, ``magnitude`` registers ``magnitude-unstructured`` (one-shot, global) and
``gradual_magnitude`` registers ``map`` (the paper's gradual, per-matrix MaP).
"""

from ppruning.methods.smp import gradual_magnitude, magnitude, method  # noqa: F401 - each registers its method
