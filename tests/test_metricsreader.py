"""The daemon's metrics reader on real files and a real store: told by inotify when a running
attempt's files change (no timer while they do not), looking every interval where it cannot be."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from hyperctl import metricstore
from hyperctl.daemon import metricsreader
from hyperctl.daemon.metricsreader import MetricsReader
from hyperctl.store import Store


def append(path: Path, *points: dict[str, float]) -> None:
    with open(path, "a") as f:
        f.writelines(json.dumps(p) + "\n" for p in points)


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within time"
        await asyncio.sleep(0.02)


def run_reader(tmp_path: Path, watched: bool) -> tuple[list[bool], list[float]]:
    """A reader of one attempt whose job writes twice, a second apart: whether a timer was set
    while the files were quiet, each time; the losses the store has at the end."""
    store = Store(tmp_path / "state.db")
    attempt = tmp_path / "attempt-1"
    attempt.mkdir()
    metrics = attempt / "metrics"

    def last_loss() -> float | None:
        summary = metricstore.summaries_of(store.conn, "j", 1).get("loss")
        return None if summary is None else summary.last

    async def main() -> list[bool]:
        reader = MetricsReader(store.conn, lambda e: None)
        if not watched:
            reader.dirwatch.close()  # as where inotify cannot be had
        reader.watch("j", 1, attempt, fresh=True)
        quiet = []
        for loss in (0.5, 0.25):
            append(metrics, {"step": int(loss * 4), "loss": loss})
            await until(lambda want=loss: last_loss() == want)
            await asyncio.sleep(2 * metricsreader.READ_EVERY)  # past the read: the files are quiet
            quiet.append(reader.timer is not None)
        reader.done("j", 1)
        assert reader.timer is None and not reader.dirwatch.reading  # nothing left running
        reader.dirwatch.close()
        return quiet

    try:
        quiet = asyncio.run(main())
        losses = [p.values["loss"] for p in metricstore.points_of(store.conn, "j", 1)]
    finally:
        store.close()
    return quiet, losses


def test_a_watched_attempt_is_read_when_its_files_change_and_costs_no_timer_while_they_do_not(
    tmp_path: Path,
) -> None:
    quiet, losses = run_reader(tmp_path, watched=True)

    assert losses == [0.5, 0.25]
    assert quiet == [False, False]


def test_where_a_folder_cannot_be_watched_its_files_are_looked_at_every_interval(tmp_path: Path) -> None:
    quiet, losses = run_reader(tmp_path, watched=False)

    assert losses == [0.5, 0.25]
    assert quiet == [True, True]
