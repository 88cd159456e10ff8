import pandas as pd
import pytest

from feedeval import data
from feedeval.data import (build_catalog, history_events, normalise_log, parse_tags, rfc3339_ms,
                           row_events, smoke_slice, split, upload_date_rfc3339)
from feedeval.replay import schedule, server_order
from synth import log_row, make_items, make_log


def test_timestamps_are_rfc3339_utc():
    assert rfc3339_ms(1650812741436) == "2022-04-24T15:05:41.436Z"
    assert rfc3339_ms(1650812741000) == "2022-04-24T15:05:41.000Z"
    # upload days are Beijing calendar days
    assert upload_date_rfc3339("2022-04-10") == "2022-04-09T16:00:00Z"


def test_parse_tags():
    assert parse_tags("20,43") == ["20", "43"]
    assert parse_tags("7") == ["7"]
    assert parse_tags("unknown") == []
    assert parse_tags(None) == []
    assert parse_tags(pd.NA) == []
    assert parse_tags("3,3") == ["3"]


def types(evs):
    return [e["type"] for e in evs]


def test_every_row_is_an_impression():
    evs = row_events(5, 9, 1650812741436, is_click=0, play_time_ms=3000, finish=0,
                     is_like=0, is_comment=0, is_forward=0)
    # played a little without a click (autoplay): an impression only
    assert types(evs) == ["impression"]
    assert evs[0] == {"user_id": "5", "video_id": "9", "ts": "2022-04-24T15:05:41.436Z", "type": "impression"}


def test_click_is_a_view_with_its_watch_time():
    evs = row_events(5, 9, 1650812741436, 1, 4200, 0, 0, 0, 0)
    assert types(evs) == ["impression", "view"]
    assert evs[1]["watch_ms"] == 4200
    assert "watch_ms" not in evs[0]


def test_finish_is_a_complete_and_flags_become_events():
    evs = row_events(5, 9, 1650812741436, 1, 61802, 1, 1, 1, 1)
    assert types(evs) == ["impression", "view", "complete", "like", "comment", "share"]
    assert evs[2]["watch_ms"] == 61802
    assert {e["ts"] for e in evs} == {"2022-04-24T15:05:41.436Z"}
    assert {(e["user_id"], e["video_id"]) for e in evs} == {("5", "9")}
    only_share = row_events(5, 9, 1650812741436, 0, 0, 0, 0, 0, 1)
    assert types(only_share) == ["impression", "share"]


def test_history_events_are_in_time_order():
    log = normalise_log(pd.DataFrame([
        log_row(1, 1, 20220425, 3000, click=1, play=10),
        log_row(2, 2, 20220425, 1000),
        log_row(3, 3, 20220425, 2000, click=1, play=5, finish=1),
    ]))
    evs = history_events(log)
    assert [t for t, _ in evs] == [1000, 2000, 2000, 2000, 3000, 3000]
    assert [e["video_id"] for _, e in evs] == ["2", "3", "3", "3", "1", "1"]
    assert types([e for _, e in evs]) == ["impression", "impression", "view", "complete", "impression", "view"]


def test_split_dates_and_lists():
    rows = [
        log_row(1, 10, 20220428, 500, click=1, play=1, finish=1),  # history
        log_row(1, 11, 20220429, 2000, ratio=0.3),
        log_row(1, 12, 20220429, 1500, ratio=2.5, finish=1, like=1),  # first exposure of (1, 0429)
        log_row(1, 11, 20220429, 2500, ratio=0.8, finish=0),  # shown again: best outcome counts
        log_row(1, 13, 20220430, 9000),  # single-video list: dropped
        log_row(2, 11, 20220430, 7000, ratio=0.1),
        log_row(2, 10, 20220430, 8000, ratio=1.0, finish=1),
        log_row(3, 10, 20220424, 100),  # outside the slice
    ]
    history, lists = split(normalise_log(pd.DataFrame(rows)))
    assert history["date"].tolist() == [20220428]
    assert [(t.user_id, t.date) for t in lists] == [(1, 20220429), (2, 20220430)]
    a, b = lists
    assert a.at_ms == 1500 and b.at_ms == 7000
    assert a.video_ids == [12, 11]
    assert a.finish == {12: 1, 11: 0}
    assert a.watch_gain == {12: 1.0, 11: pytest.approx(0.8)}  # capped at 1, best of two exposures
    assert a.like == {12: 1, 11: 0}
    assert b.finish == {11: 0, 10: 1}


def test_split_history_is_only_the_four_history_days():
    log = normalise_log(make_log())
    history, lists = split(log)
    assert set(history["date"]) == set(data.HISTORY_DATES)
    assert {t.date for t in lists} == set(data.TARGET_DATES)
    assert [t.at_ms for t in lists] == sorted(t.at_ms for t in lists)
    for t in lists:
        rows = log[(log.user_id == t.user_id) & (log.date == t.date)]
        assert t.at_ms == rows.time_ms.min()
        assert set(t.video_ids) == set(rows.video_id)


def test_catalog_uses_static_columns_only():
    items = make_items()
    cat = build_catalog(items)
    leaked = make_items()
    leaked["show_cnt"] = -1.0
    leaked["like_cnt"] = 12345.0
    assert build_catalog(leaked).videos == cat.videos
    v3 = next(v for v in cat.videos if v["id"] == "3")
    assert v3 == {"id": "3", "creator_id": "1003", "published_at": "2022-04-09T16:00:00Z",
                  "duration_ms": 13000, "tags": ["0", "13"], "content_type": "short"}
    assert next(v for v in cat.videos if v["id"] == "1")["tags"] == []
    # unknown duration: the median of the known ones
    known = sorted(10_000 + 1000 * v for v in range(1, 12))
    assert next(v for v in cat.videos if v["id"] == "0")["duration_ms"] == known[len(known) // 2]
    assert cat.imputed_duration == 1
    assert len(build_catalog(items, only_ids={2, 5}).videos) == 2


def test_schedule_sends_exactly_the_events_before_each_list():
    class L:
        def __init__(self, at):
            self.at_ms = at
    plan = schedule([1, 2, 5, 9, 9, 30], [L(3), L(3), L(9), L(20)])
    assert plan == [(0, 2), (2, 2), (2, 3), (3, 5)]  # strictly before `at`; the 30 is never needed


def test_server_order_maps_ids_and_puts_missing_last():
    order, missing, unexpected = server_order(["3", "1", "99", "x"], [1, 2, 3, 4])
    assert order == [3, 1, 2, 4]
    assert (missing, unexpected) == (2, 2)


def test_smoke_slice_is_small_and_deterministic():
    log = normalise_log(make_log(users=20))
    a, b = smoke_slice(log, 3), smoke_slice(log, 3)
    assert a.equals(b)
    assert sorted(set(a.user_id)) == [0, 1, 2]
    assert len(a) == len(log[log.user_id.isin([0, 1, 2])])


def test_val_split_lies_inside_the_test_history():
    val_hist, val_target = data.SPLITS["val"]
    test_hist, test_target = data.SPLITS["test"]
    assert set(val_hist) | set(val_target) <= set(test_hist), "val never touches the test targets"
    assert max(val_hist) < min(val_target)
    log = normalise_log(make_log())
    history, lists = split(log, history_dates=val_hist, target_dates=val_target)
    assert set(history["date"]) <= set(val_hist)
    assert {t.date for t in lists} <= set(val_target)
