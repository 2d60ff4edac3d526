"""Training: in-memory task data, the joint loop, checkpoints."""
