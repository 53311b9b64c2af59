"""Test scaffolding shared by tests and benchmarks (random SAM 2 checkpoints)."""
