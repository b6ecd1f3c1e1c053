"""Delta table I/O of the store: schemas, creation, commits, locks. Nothing else."""
