"""Live mode: segment a camera, stream, file or the browser's own camera as it plays, in a page.

``sources`` opens what ``--source`` names (``browser_camera``: frames the page sends over a
WebSocket); ``capture`` reads it into a newest-frame-only slot (stale frames are dropped and
counted, never queued); ``session`` runs the loop: ``tracking`` applies the page's prompts on
the frame they were given on (rewinding a few kept frames) and tracks the newest frame;
``display`` renders the overlay, ``stats`` measures it; ``controls`` turns the page's clicks
into commands; ``server`` (aiohttp) serves the page (``static/``) to those ``access`` lets in,
over HTTPS with ``tls``; ``recorder`` saves tracks.json and overlay.mp4. Remote sessions put
frames and results through Redis streams: ``remote_wire`` (format), ``remote_capture``
(camera side) and ``remote_worker`` (tracker side, an rq job).
"""
