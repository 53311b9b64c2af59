"""The processes that run the pipeline: the queue worker, live mode and batch annotation."""
