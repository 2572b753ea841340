"""Training: the loop, jitted steps, state, sharding, optimizer, checkpoints, encoder reuse."""
