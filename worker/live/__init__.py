"""Live mode: segment a camera, stream or file as it plays, in a web page.

``sources`` opens what ``--source`` names; ``capture`` reads it into a newest-frame-only slot
(stale frames are dropped and counted, never queued); ``session`` runs the tracker on the
newest frame and renders the overlay (``display``), measuring capture-to-overlay latency
(``stats``); ``controls`` turns the page's clicks into prompts; ``server`` serves the page
(``static/``); ``recorder`` saves tracks.json and overlay.mp4. Remote sessions put frames and
results through Redis streams: ``remote_wire`` (format), ``remote_capture`` (camera side) and
``remote_worker`` (tracker side, an rq job).
"""
