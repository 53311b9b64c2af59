"""``streamseg live --source SRC``: segment a camera, stream or file live, in a web page.

Local: ``streamseg live --source 0`` tracks here and serves the page on http://127.0.0.1:8765/.
Remote: ``streamseg live --source 0 --redis redis://gpu-box:6379/0`` captures here and queues
the session for a GPU box running ``rq worker streamseg-live --url redis://...`` (or
``streamseg live --serve-remote SESSION --redis URL`` there); frames and results travel
through Redis streams. Ctrl-C stops; ``--save DIR`` then writes tracks.json and overlay.mp4.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from worker.commands.common import add_model_flags, tracker_settings

DEFAULT_PORT = 8765


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "live",
        help="live segmentation of a camera, stream or file in a web page",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "--source",
        help="camera index or device (0, /dev/video0), rtsp:// or http:// stream, a video file "
        "(played in real time), synthetic[:WxH[@FPS]], or browser[:WxH]: the camera of the "
        "computer that opens the page (needs HTTPS beyond localhost: --tls-self-signed)",
    )
    parser.add_argument("--loop", action="store_true", help="play a file source again and again")
    parser.add_argument("--host", default="127.0.0.1", help="page address (default: localhost)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="page port (0: any free)")
    parser.add_argument("--save", type=Path, metavar="DIR", help="write tracks.json+overlay.mp4")
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="give up when the source delivers no frame for S seconds",
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=2.0,
        metavar="S",
        help="keep the page up S seconds after the session ends",
    )
    _add_access_flags(parser)
    _add_remote_flags(parser)
    add_model_flags(parser)
    parser.set_defaults(handler=run)


def _add_access_flags(parser: argparse.ArgumentParser) -> None:
    access = parser.add_argument_group("who may open the page")
    access.add_argument(
        "--token",
        help="require this token on every request (default: a random one when --host is "
        "not loopback; the printed URL carries it)",
    )
    access.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this name in the Host header (e.g. a DNS name of this machine)",
    )
    access.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve HTTPS with this")
    access.add_argument("--tls-key", type=Path, metavar="PEM", help="key of --tls-cert")
    access.add_argument(
        "--tls-self-signed",
        action="store_true",
        help="serve HTTPS with a new self-signed certificate (the browser warns once)",
    )


def _add_remote_flags(parser: argparse.ArgumentParser) -> None:
    remote = parser.add_argument_group("remote tracking through Redis streams")
    remote.add_argument("--redis", metavar="URL", help="track on a queue worker via this Redis")
    remote.add_argument("--session", help="session id (default: a new random one)")
    remote.add_argument(
        "--no-enqueue",
        action="store_true",
        help="do not queue the session (a --serve-remote process serves it)",
    )
    remote.add_argument(
        "--serve-remote",
        metavar="SESSION",
        help="be the tracker side of SESSION (needs --redis; no page)",
    )
    remote.add_argument(
        "--idle-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="tracker side: stop after S seconds without frames",
    )


def run(args: argparse.Namespace) -> int:
    from configs.errors import InputError

    if args.serve_remote:
        if not args.redis:
            raise InputError("--serve-remote needs --redis URL")
        return _serve_remote(args)
    if not args.source:
        raise InputError("--source is required (a camera index, device, URL or video file)")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InputError("--tls-cert and --tls-key go together")
    if args.tls_cert is not None and args.tls_self_signed:
        raise InputError("--tls-self-signed or --tls-cert/--tls-key, not both")
    tls = _tls(args)  # a bad certificate fails before the camera or a model is opened
    from worker.runtimes.live.browser_camera import BrowserCameraSource, browser_size
    from worker.runtimes.live.capture import Capture
    from worker.runtimes.live.sources import open_source, parse_source

    size = browser_size(args.source)
    if size is not None:
        source = BrowserCameraSource(*size)
        args.stall_timeout = float("inf")  # the page may connect (and reconnect) any time
    else:
        source = open_source(parse_source(args.source, loop=args.loop))  # fails fast
    capture = Capture(source)
    try:
        session = _remote_session(args, capture) if args.redis else _local_session(args, capture)
    except BaseException:
        source.close()
        raise
    camera = source if size is not None else None
    return _serve_page(args, session, tls, camera)


def _tls(args: argparse.Namespace):
    from worker.runtimes.live import tls

    if args.tls_cert is not None:
        return tls.server_context(args.tls_cert, args.tls_key)
    if args.tls_self_signed:
        from worker.runtimes.live.access import machine_names

        hosts = ("127.0.0.1", "::1", *sorted(machine_names()), *args.allow_host)
        if args.host not in ("0.0.0.0", "::", ""):
            hosts = (args.host, *hosts)
        return tls.self_signed_context(hosts)
    return None


def _local_session(args: argparse.Namespace, capture):
    from worker.engines.registry import load_engine
    from worker.runtimes.live.session import LiveSession

    engine = load_engine(tracker_settings(args))
    info = capture.source.info
    return LiveSession(
        capture,
        lambda: engine.make_tracker(info),
        stall_timeout=args.stall_timeout,
        recorder=_recorder(args, info, engine.model),
    )


def _remote_session(args: argparse.Namespace, capture):
    from worker.runtimes.live import remote_wire
    from worker.runtimes.live.remote_capture import RemoteCaptureSession

    client = remote_wire.connect(args.redis)
    session_id = args.session or uuid.uuid4().hex[:12]
    if not args.no_enqueue:
        _enqueue(args, client, session_id)
    else:
        print(
            f"streamseg live: serve it with: streamseg live --serve-remote {session_id} "
            f"--redis {args.redis}",
            file=sys.stderr,
        )
    meta = {"name": "remote", "session": session_id}
    return RemoteCaptureSession(
        capture,
        client,
        session_id,
        stall_timeout=args.stall_timeout,
        recorder=_recorder(args, capture.source.info, meta),
    )


def _enqueue(args: argparse.Namespace, client, session_id: str) -> None:
    from rq import Queue

    from jobs.redis_keys import LIVE_QUEUE
    from worker.runtimes.live.remote_session_job import RemoteSessionSpec, run_remote_session_job

    spec = RemoteSessionSpec(session_id, args.redis, _remote_model(args), args.idle_timeout)
    Queue(LIVE_QUEUE, connection=client).enqueue(
        run_remote_session_job, spec, job_timeout=24 * 3600, result_ttl=3600, failure_ttl=86400
    )
    print(
        f"streamseg live: session {session_id} queued on '{LIVE_QUEUE}' "
        f"(a GPU box serves it with: rq worker {LIVE_QUEUE} --url {args.redis})",
        file=sys.stderr,
    )


def _remote_model(args: argparse.Namespace):
    """Model flags as given: the tracker's machine resolves them (cache, devices, auto)."""
    from worker.runtimes.live.remote_session_job import RemoteModel

    checkpoint = str(args.checkpoint) if args.checkpoint else None
    return RemoteModel(args.model, checkpoint, args.image_size, args.device, args.offload_memory)


def _recorder(args: argparse.Namespace, info, model):
    if args.save is None:
        return None
    from worker.runtimes.live.recorder import Recorder

    return Recorder(args.save, info.width, info.height, info.fps, model)


def _serve_page(args: argparse.Namespace, session, tls=None, camera=None) -> int:
    from worker.runtimes.live.server import LiveServer
    from worker.runtimes.live.session import Status
    from worker.runtimes.live.sources import SourceError

    server = LiveServer(
        session,
        args.host,
        args.port,
        token=args.token,
        allow_hosts=tuple(args.allow_host),
        tls=tls.context if tls else None,
        camera=camera,
    )
    with server:
        _announce(args, server, tls)
        with _sigterm_as_interrupt(), session:
            try:
                while not session.wait(0.5):
                    pass
            except KeyboardInterrupt:
                print("streamseg live: stopping", file=sys.stderr)
        state = session.state()
        session.display.close()
        if state.status is not Status.STOPPED and args.linger > 0:
            _linger(args.linger)  # the page's last polls see how the session ended
    print(f"streamseg live: {state.status.value}: {state.message}", file=sys.stderr)
    print(f"streamseg live: {state.stats.summary()}", file=sys.stderr)
    for path in state.saved:
        print(f"streamseg live: saved {path}", file=sys.stderr)
    if state.status is Status.FAILED:
        raise SourceError(state.message)
    return 0


def _announce(args: argparse.Namespace, server, tls) -> None:
    from worker.runtimes.live.access import is_loopback

    if not is_loopback(args.host):
        print(
            f"streamseg live: serving beyond this machine on {args.host}: only the URL below "
            "(with its token) opens the page",
            file=sys.stderr,
        )
    if tls is not None and tls.self_signed:
        print(
            f"streamseg live: self-signed certificate, SHA-256 {tls.fingerprint}",
            file=sys.stderr,
        )
    print(f"streamseg live: open {server.url} (Ctrl-C to stop)", file=sys.stderr)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (service managers, ``docker stop``) stops the session like Ctrl-C: saved."""
    ignored = signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # started so: kept so
    if ignored or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _linger(seconds: float) -> None:
    import time

    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        pass


def _serve_remote(args: argparse.Namespace) -> int:
    from worker.runtimes.live.remote_session_job import RemoteSessionSpec, run_remote_session_job

    spec = RemoteSessionSpec(args.serve_remote, args.redis, _remote_model(args), args.idle_timeout)
    print(f"streamseg live: serving session {spec.session_id}", file=sys.stderr)
    summary = run_remote_session_job(spec)
    print(
        f"streamseg live: {summary.frames} frames tracked, {summary.skipped} skipped; "
        f"{summary.reason}",
        file=sys.stderr,
    )
    return 0
