"""``streamseg worker [--queue NAME ...] [--redis URL]``: serve segmentation jobs from Redis."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import time

from jobs.errors import TransientError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="serve queued segmentation jobs (loads each model once per process)",
        description="An RQ worker for streamseg jobs: runs jobs in this process (no fork per "
        "job), so models stay loaded across jobs. Settings: STREAMSEG_REDIS_URL, "
        "STREAMSEG_QUEUE, STREAMSEG_CHECKPOINT_EVERY, STREAMSEG_HEARTBEAT_S, "
        "STREAMSEG_ABANDONED_AFTER_S, STREAMSEG_MAINTENANCE_S, STREAMSEG_WORK_DIR.",
    )
    parser.add_argument(
        "--queue", action="append", dest="queues", metavar="NAME", help="queue(s) to serve"
    )
    parser.add_argument("--redis", metavar="URL", help="Redis URL (default $STREAMSEG_REDIS_URL)")
    parser.add_argument("--name", help="worker name (default: HOST.PID)")
    parser.add_argument("--burst", action="store_true", help="quit once the queues are empty")
    parser.add_argument("--max-jobs", type=int, metavar="N", help="quit after N jobs")
    parser.add_argument("--wait-for-redis", type=float, default=30.0, metavar="S",
                        help="how long to wait for Redis at start (default 30 s)")  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from configs.settings import load_settings
    from jobs.queue import connect_redis
    from worker.rq_worker import StreamsegWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = load_settings().queue
    url = args.redis or settings.redis_url
    _wait_for_redis(url, args.wait_for_redis)
    redis = connect_redis(url)
    worker = StreamsegWorker(
        args.queues or [settings.queue_name],
        connection=redis,
        settings=settings,
        name=args.name or f"{socket.gethostname()}.{os.getpid()}",
    )
    worker.work(burst=args.burst, max_jobs=args.max_jobs, logging_level="INFO")
    return 0


def _wait_for_redis(url: str, seconds: float) -> None:
    """Redis may start together with the worker (``honcho start``): give it a moment."""
    from redis import Redis
    from redis.exceptions import ConnectionError, TimeoutError

    deadline = time.monotonic() + seconds
    while True:
        try:
            with Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as probe:
                probe.ping()
            return
        except (ConnectionError, TimeoutError) as error:
            if time.monotonic() > deadline:
                raise TransientError(f"cannot reach Redis at {url}: {error}") from None
            time.sleep(0.5)
