"""Batch annotation: many videos through one loaded engine, each to its own output folder.

``inputs`` finds the videos, ``prompt_sources`` says what to track in each, ``runner`` runs
them one by one with per-video error capture, ``exports`` writes the annotation-tool formats,
``manifest`` marks a finished video (written last) so a rerun skips it, ``progress`` and
``summary`` are what the user sees.
"""
