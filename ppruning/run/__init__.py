"""One run of a method: its config, the plan, the prune run, the outputs, the report, the record, resuming."""
