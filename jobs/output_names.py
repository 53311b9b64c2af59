"""The names of the files a run writes in its output folder: every module asks here.

A segment run (the ``segment`` command, a queued job, a live session's recording) writes
:data:`OUTPUT_FILES`; the batch runner adds the derived exports. While a run is going,
``jobs.tracks.TracksWriter`` spools into ``tracks.json`` + :data:`SPOOL_SUFFIX` and regroups the
spool in a scratch folder whose name starts with :data:`TRACKS_SCRATCH_PREFIX`; a killed run's
debris is recognised by these names (``worker.pipeline.output_dir``).
"""

from __future__ import annotations

TRACKS_FILE = "tracks.json"  # the core result (jobs.tracks)
OVERLAY_FILE = "overlay.mp4"  # the masks drawn on the video (jobs.overlay)
OUTPUT_FILES = (TRACKS_FILE, OVERLAY_FILE)

SPOOL_SUFFIX = ".spool"  # tracks.json.spool: TracksWriter's record spool, kept for a resume
TRACKS_SCRATCH_PREFIX = ".tracks-"  # TracksWriter.finish's scratch folder, beside tracks.json

# derived exports (worker.runtimes.batch.exports), made from tracks.json
DAVIS_DIR = "davis"  # 00000.png, ... (jobs.exports.davis_png)
YTVIS_FILE = "ytvis.json"
CVAT_FILE = "annotations.xml"
MOT_FILE = "mot.txt"
