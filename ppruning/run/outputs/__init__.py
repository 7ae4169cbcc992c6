"""What a prune run writes, one writer per method kind (structured, unstructured)."""
