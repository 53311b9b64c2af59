"""The table that closes a batch run: one row per video, then the counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from worker.runtimes.batch.runner import Status, VideoResult

_HEADERS = ("video", "status", "frames", "objects", "fps", "seconds", "detail")


def summary_rows(results: Sequence[VideoResult]) -> list[tuple[str, ...]]:
    rows = []
    for result in results:
        ran = result.status is Status.DONE
        rows.append(
            (
                result.name,
                result.status.value,
                str(result.num_frames) if result.num_frames else "-",
                ",".join(str(i) for i in result.object_ids) or "-",
                f"{result.fps:.1f}" if ran else "-",
                f"{result.seconds:.1f}" if ran else "-",
                result.detail,
            )
        )
    return rows


def format_summary(results: Sequence[VideoResult]) -> str:
    """An aligned text table (the last column unpadded) and a totals line."""
    rows = [_HEADERS, *summary_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths) + "  ------")
    lines.append(totals_line(results))
    return "\n".join(lines)


def totals_line(results: Sequence[VideoResult]) -> str:
    counts = Counter(result.status for result in results)
    parts = [f"{counts[status]} {status.value}" for status in Status if counts[status]]
    return f"{len(results)} videos: " + ", ".join(parts) if parts else "no videos"


def exit_code(results: Sequence[VideoResult]) -> int:
    """0 when every video is done or skipped, 1 when any failed, 130 when interrupted."""
    statuses = {result.status for result in results}
    if statuses & {Status.INTERRUPTED, Status.PENDING}:
        return 130
    return 1 if Status.FAILED in statuses else 0
