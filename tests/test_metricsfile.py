"""Reading a metrics file by offset: whole lines only, bad lines skipped, summaries as points come."""

from __future__ import annotations

import math

from hyperctl.metricsfile import Summary, read_new, summarize


def test_only_whole_lines_are_read_and_a_cut_one_waits() -> None:
    data = b'{"t":1.5,"step":0,"loss":0.5}\n{"t":2.5,"step":1,"loss":0.4}\n{"t":3.5,"st'
    reading = read_new(data)
    assert [(p.step, p.values) for p in reading.points] == [(0, {"loss": 0.5}), (1, {"loss": 0.4})]
    assert reading.used == data.rindex(b"\n") + 1 and reading.skipped == 0
    assert read_new(b'{"step":2,"lo').used == 0


def test_bad_lines_are_skipped_and_counted_not_the_rest() -> None:
    data = b'{"step":0,"loss":1}\nnot json\n[1,2]\n{"step":"x","loss":1}\n{"loss":2,"name":"text"}\n{"loss":NaN}\n'
    reading = read_new(data, lines_before=10)
    assert [(p.step, p.values.keys()) for p in reading.points][0] == (0, {"loss"})
    assert reading.points[1].step == 14 and reading.points[1].values == {"loss": 2.0}  # its line number
    assert math.isnan(reading.points[2].values["loss"])
    assert reading.skipped == 3


def test_summaries_keep_last_min_max_and_their_steps() -> None:
    summaries: dict[str, Summary] = {}
    summarize(read_new(b'{"step":0,"acc":0.5}\n{"step":1,"acc":0.9}\n{"step":2,"acc":NaN}\n').points, summaries)
    summarize(read_new(b'{"step":0,"acc":0.1}\n').points, summaries)  # a retry starts again at 0
    acc = summaries["acc"]
    assert (acc.last, acc.last_step, acc.min, acc.min_step, acc.max, acc.max_step, acc.count) == (
        0.1,
        0,
        0.1,
        0,
        0.9,
        1,
        4,
    )
