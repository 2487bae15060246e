"""tinct training: the offline photo corpus and the training loop."""
