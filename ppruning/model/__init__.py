"""The model itself: loading, weights in memory of their own, surgery, mask hooks, checkpoints, the portable format."""
