"""Error types shared by every command, job and worker.

An ``InputError`` is the user's fault (bad file, bad prompt, unknown model): it is reported
as one line, never retried, and never leaves output that looks complete.
"""


class StreamsegError(Exception):
    """Base class for errors reported to the user as one line."""


class InputError(StreamsegError):
    """Bad input: a missing or unreadable video, an invalid prompt, an unknown model."""


class VideoDecodeError(InputError):
    """The video could not be opened or decoded (not a video, truncated, no video stream)."""


class ModelLoadError(InputError):
    """The model could not be built or its checkpoint does not fit it."""


class OutputError(InputError):
    """The output folder cannot take the results: not a folder, not writable, full, failing."""


class TransientError(StreamsegError):
    """A failure worth retrying (storage or network unreachable)."""


class ReadInterrupted(KeyboardInterrupt):
    """A read of the input was cut short by a signal (FFmpeg's call returned EINTR, and PyAV
    raised its own error in place of whatever the signal's handler raised): not bad input.
    The command line reports the stop the signal asked for; a queue job goes back on the
    queue (a shutdown) or is retried."""
