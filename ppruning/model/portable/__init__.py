"""Pruned checkpoints that plain transformers loads.

``configuration_pruned.py`` and ``modeling_pruned.py`` are shipped inside checkpoints
whose layers differ in size (they import torch and transformers only);
:mod:`ppruning.model.portable.describe` decides, at save time, whether a checkpoint can be a
plain stock one or needs them, and writes its ``config.json`` accordingly.
"""
