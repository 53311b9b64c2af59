"""Tracking engines behind one contract: SAM 2 (``sam2video``) and the CPU ``lite`` engine.

``registry.load_engine`` opens one by model name; both engines yield the frame-result types of
``worker.engines.contract``.
"""
