"""The segment pipeline: frames through an engine into tracks.json and overlay.mp4, with the
output folder's checks and the background stages."""
