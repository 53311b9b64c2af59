"""The RQ queue worker: job classes and hooks, the job runner, crash-resume checkpoints, queue
hygiene and the per-device supervisor."""
