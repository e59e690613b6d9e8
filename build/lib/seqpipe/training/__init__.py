"""Training: losses, data preparation, the training loop and checkpoints."""
