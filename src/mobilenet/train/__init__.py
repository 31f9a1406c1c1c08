"""Training: the epoch loop and optimizers, a whole run with checkpoints and resume, distributed setup, plots."""
