"""Training child networks: models, datasets, data-parallel backends and the trainer."""
