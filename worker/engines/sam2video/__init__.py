"""The SAM 2 engine: the ``sam2`` package's own modules driven frame by frame with a bounded
memory bank (model loading, checkpoints, preprocessing, compile, the streaming tracker)."""
