"""``streamseg worker``: serve segmentation jobs from Redis (one process, or one per device)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import time

from configs.errors import TransientError

log = logging.getLogger("streamseg.worker")
DEFAULT_STOP_TIMEOUT_S = 120.0


def register(subparsers: argparse._SubParsersAction) -> None:
    from configs.settings import load_settings

    queue = load_settings().queue
    parser = subparsers.add_parser(
        "worker",
        help="serve queued segmentation jobs (loads each model once per process)",
        description="An RQ worker for streamseg jobs: runs jobs in this process (no fork per "
        "job), so models stay loaded across jobs. With --devices, a supervisor starting one "
        "such worker per device. Defaults shown come from the environment "
        "(configs/settings.py, QueueSettings) where it sets them.",
        epilog=_settings_epilog(queue),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--queue",
        action="append",
        dest="queues",
        metavar="NAME",
        help="queue to serve, repeatable; earlier queues first (default: "
        f"{queue.queue_name}, from $STREAMSEG_QUEUE)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help=f"Redis URL (default: {queue.redis_url_shown}, from $STREAMSEG_REDIS_URL)",
    )
    parser.add_argument(
        "--name",
        help="worker name, unique in the fleet (default: HOST.PID; "
        "with --devices, NAME.SLOT.RESTART per child)",
    )
    parser.add_argument(
        "--device",
        help="device of this worker's jobs: cpu, cuda, cuda:N "
        f"(default: {queue.device or 'cuda if present, else cpu'}, from "
        "$STREAMSEG_DEVICE)",
    )
    parser.add_argument(
        "--devices",
        metavar="LIST",
        help="run one worker process per device "
        "and restart any that dies: cuda:0,cuda:1,... or cpu,cpu or all (every "
        "visible GPU; one CPU worker without) (default: off, one process)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=DEFAULT_STOP_TIMEOUT_S,
        metavar="S",
        help="with --devices: how long SIGTERM waits for the "
        "workers' warm shutdown before killing them (default: %(default).0f s)",
    )
    parser.add_argument(
        "--burst",
        action="store_true",
        help="quit once the queues are empty (default: keep serving)",
    )
    parser.add_argument(
        "--max-jobs", type=int, metavar="N", help="quit after N jobs (default: no limit)"
    )
    parser.add_argument(
        "--wait-for-redis",
        type=float,
        default=30.0,
        metavar="S",
        help="how long to wait for Redis at start (default: %(default).0f s)",
    )
    parser.set_defaults(handler=run)


def _settings_epilog(queue) -> str:
    return (
        "settings a fleet tunes (environment; effective values now):\n"
        f"  STREAMSEG_ABANDONED_AFTER_S={queue.abandoned_after_s}  a job whose worker stopped "
        "heartbeating is requeued after this\n"
        f"  STREAMSEG_MAINTENANCE_S={queue.maintenance_interval_s}  how often each worker, idle "
        "or busy, requeues abandoned jobs\n"
        f"  STREAMSEG_HEARTBEAT_S={queue.heartbeat_interval_s:g}  heartbeat period during a job\n"
        f"  STREAMSEG_WORKER_TTL_S={queue.worker_ttl_s}  a worker's registration lifetime "
        "without heartbeats\n"
        f"  STREAMSEG_CHECKPOINT_EVERY={queue.checkpoint_every}  frames between crash-resume "
        "checkpoints\n"
        f"  STREAMSEG_WORK_DIR={queue.work_dir}  scratch space\n"
        f"exit status: 0 when asked to stop (SIGTERM, Ctrl+C) or done (--burst, --max-jobs); "
        "1 when an error stopped it; 2 for bad arguments"
    )


def run(args: argparse.Namespace) -> int:
    from configs.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = load_settings().queue
    url = args.redis or settings.redis_url
    queues = args.queues or [settings.queue_name]
    if args.devices:
        return _supervise(args, url, queues)
    if args.device:
        if args.device != "cpu":
            from worker.engines.registry import check_device

            check_device(args.device)
        os.environ["STREAMSEG_DEVICE"] = args.device  # read by each job's settings
    return _serve(args, url, queues, load_settings().queue)


def _serve(args: argparse.Namespace, url: str, queues: list[str], settings) -> int:
    from redis.exceptions import RedisError

    from configs.errors import InputError
    from jobs.queue import connect_redis
    from worker.runtimes.queue.rq_hooks import StreamsegWorker

    _wait_for_redis(url, args.wait_for_redis)
    worker = StreamsegWorker(
        queues,
        connection=connect_redis(url),
        settings=settings,
        name=args.name or f"{socket.gethostname()}.{os.getpid()}",
    )
    if worker.connection.exists(worker.key) and not worker.connection.hexists(worker.key, "death"):
        raise InputError(f"a worker named {worker.name} is already registered: pick another --name")
    worker.clean_registries()  # requeue dead workers' jobs now, before the slow imports
    _preload()
    try:
        worker.work(burst=args.burst, max_jobs=args.max_jobs, logging_level="INFO")
    except RedisError as error:  # RQ's own start-up or teardown failed on Redis
        log.error("worker %s: Redis failed: %s", worker.name, " ".join(str(error).split()))
        return 1
    if worker.stopped_cleanly(args.burst, args.max_jobs):
        return 0
    log.error("worker %s stopped by an error (see above): exit status 1", worker.name)
    return 1


def _preload() -> None:
    """Import the heavy libraries before taking a job: loading their shared objects holds the
    GIL for seconds, which would starve the heartbeat thread of a running job."""
    import importlib

    for name in ("torch", "worker.runtimes.queue.job_runner"):
        importlib.import_module(name)


def _supervise(args: argparse.Namespace, url: str, queues: list[str]) -> int:
    from worker.runtimes.queue.supervisor import Supervisor, parse_devices

    if args.device:
        from configs.errors import InputError

        raise InputError("give either --device (one worker) or --devices (one per device)")
    worker_args = ["--redis", url, "--wait-for-redis", str(args.wait_for_redis)]
    for name in queues:
        worker_args += ["--queue", name]
    if args.burst:
        worker_args.append("--burst")
    if args.max_jobs is not None:
        worker_args += ["--max-jobs", str(args.max_jobs)]
    supervisor = Supervisor(
        devices=parse_devices(args.devices),
        worker_args=worker_args,
        name_prefix=args.name or f"{socket.gethostname()}.{os.getpid()}",
        redis_url=url,
        queues=queues,
        stop_timeout_s=args.stop_timeout,
    )
    return supervisor.run()


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
