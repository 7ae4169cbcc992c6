"""Architecture adapters, one module per model family, keyed on ``config.model_type``."""
