"""Recovering what pruning lost: retraining-free reconstruction and the distillation losses."""
