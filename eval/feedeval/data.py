"""Loading the KuaiRand slice and turning it into feed-server requests.

Follows the replay protocol of ``data/kuairand/README.md``:

* catalog: one Video per row of ``item_features`` built from *static* columns only (the aggregate
  counters of that file cover days after the slice and would leak the future);
* history: the exposures of 2022-04-25 .. 2022-04-28 as events with their own timestamps;
* target: one list per (user, day) of 2022-04-29 .. 2022-04-30, ranked as of its first exposure.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pandas as pd

HISTORY_DATES = (20220425, 20220426, 20220427, 20220428)
TARGET_DATES = (20220429, 20220430)

# The splits `--split` can choose: (history days, target days). `test` is the protocol's; `val`
# lies wholly inside the test split's history days (history 04-25..27, target 04-28), so knobs such
# as the default profile's weights are chosen on it and never on the test split's target days.
SPLITS = {
    "test": (HISTORY_DATES, TARGET_DATES),
    "val": ((20220425, 20220426, 20220427), (20220428,)),
}

# The only item_features columns the harness may read. Everything else in that file (show_cnt,
# play_cnt, like_cnt, ...) is an aggregate over the whole logging period: never a feature.
ITEM_STATIC_COLUMNS = ("video_id", "author_id", "upload_dt", "video_duration", "tag", "video_type")

# Columns of val.parquet the harness reads.
LOG_COLUMNS = (
    "user_id", "video_id", "date", "time_ms", "is_click", "is_like", "is_comment", "is_forward",
    "play_time_ms", "watch_ratio", "finish",
)

# Kuaishou is a Chinese service: upload dates are calendar days in Beijing time.
UPLOAD_TZ = timezone(timedelta(hours=8))


def default_data_dir() -> str:
    """``../shared/data/kuairand`` relative to the repository root."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.normpath(os.path.join(repo, "..", "shared", "data", "kuairand"))


def load(data_dir: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (log, items): the exposure log and the static item attributes."""
    log = pd.read_parquet(os.path.join(data_dir, "val.parquet"), columns=list(LOG_COLUMNS))
    items = pd.read_parquet(os.path.join(data_dir, "item_features.parquet"),
                            columns=list(ITEM_STATIC_COLUMNS))
    return normalise_log(log), items


def normalise_log(log: pd.DataFrame) -> pd.DataFrame:
    """Plain numpy dtypes (no nullable NA), missing flags as 0, rows in time order (stable)."""
    out = pd.DataFrame({
        "user_id": log["user_id"].astype("int64"),
        "video_id": log["video_id"].astype("int64"),
        "date": log["date"].astype("int64"),
        "time_ms": log["time_ms"].astype("int64"),
    })
    for col in ("is_click", "is_like", "is_comment", "is_forward", "finish"):
        out[col] = log[col].fillna(0).astype("int64")
    out["play_time_ms"] = log["play_time_ms"].fillna(0).astype("int64")
    out["watch_ratio"] = log["watch_ratio"].astype("float64").fillna(0.0)
    return out.sort_values("time_ms", kind="stable").reset_index(drop=True)


def rfc3339_ms(epoch_ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 UTC with millisecond precision, e.g. 2022-04-25T03:04:05.678Z."""
    dt = datetime.fromtimestamp(int(epoch_ms) / 1000.0, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch_ms) % 1000:03d}Z"


def upload_date_rfc3339(upload_dt: str) -> str:
    """'2022-04-10' (Beijing calendar day) -> '2022-04-09T16:00:00Z'."""
    day = datetime.strptime(str(upload_dt)[:10], "%Y-%m-%d").replace(tzinfo=UPLOAD_TZ)
    return day.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_tags(tag) -> list[str]:
    """'20,43' -> ['20', '43']; 'unknown' / empty / missing -> []."""
    if tag is None or (isinstance(tag, float) and math.isnan(tag)) or tag is pd.NA:
        return []
    out = []
    for part in str(tag).split(","):
        part = part.strip()
        if part and part.lower() != "unknown" and part not in out:
            out.append(part)
    return out


@dataclass
class Catalog:
    videos: list[dict]
    # videos whose duration is unknown in item_features (sent with the median duration)
    imputed_duration: int = 0


def build_catalog(items: pd.DataFrame, only_ids=None) -> Catalog:
    """One Video per item_features row, from the static columns only.

    ``only_ids``: restrict to these video ids (the smoke slice).
    """
    static = items.loc[:, list(ITEM_STATIC_COLUMNS)]
    if only_ids is not None:
        static = static[static["video_id"].isin(set(only_ids))]
    durations = static["video_duration"].astype("float64")
    known = durations[durations.notna() & (durations > 0)]
    median = int(round(float(known.median()))) if len(known) else 60_000
    videos, imputed = [], 0
    for row in static.itertuples(index=False):
        dur = row.video_duration
        if dur is None or dur is pd.NA or not (float(dur) > 0):
            dur, imputed = median, imputed + 1
        videos.append({
            "id": str(int(row.video_id)),
            "creator_id": str(int(row.author_id)),
            "published_at": upload_date_rfc3339(row.upload_dt),
            "duration_ms": int(round(float(dur))),
            "tags": parse_tags(row.tag),
            # KuaiRand is the short-video feed; AD / NORMAL are both short clips.
            "content_type": "short",
        })
    return Catalog(videos=videos, imputed_duration=imputed)


def row_events(user_id: int, video_id: int, time_ms: int, is_click: int, play_time_ms: int,
               finish: int, is_like: int, is_comment: int, is_forward: int) -> list[dict]:
    """The events one exposure row stands for, in this order: impression; view (watch time) when
    clicked; complete when finished; like, comment, share when flagged. All carry the row's time."""
    base = {"user_id": str(int(user_id)), "video_id": str(int(video_id)), "ts": rfc3339_ms(time_ms)}
    evs = [dict(base, type="impression")]
    if is_click:
        evs.append(dict(base, type="view", watch_ms=int(play_time_ms)))
    if finish:
        evs.append(dict(base, type="complete", watch_ms=int(play_time_ms)))
    if is_like:
        evs.append(dict(base, type="like"))
    if is_comment:
        evs.append(dict(base, type="comment"))
    if is_forward:
        evs.append(dict(base, type="share"))
    return evs


def history_events(history: pd.DataFrame) -> list[tuple[int, dict]]:
    """(time_ms, event) for every history row, in time order (stable for equal times)."""
    h = history.sort_values("time_ms", kind="stable")
    out = []
    for r in h.itertuples(index=False):
        for ev in row_events(r.user_id, r.video_id, r.time_ms, r.is_click, r.play_time_ms,
                             r.finish, r.is_like, r.is_comment, r.is_forward):
            out.append((int(r.time_ms), ev))
    return out


@dataclass
class TargetList:
    """One (user, day) of the target period: the videos the user was shown that day."""
    user_id: int
    date: int
    at_ms: int  # first exposure of the day: the list is ranked as of this time
    video_ids: list[int]  # distinct, in first-exposure order
    finish: dict[int, int] = field(default_factory=dict)  # video -> 0/1
    watch_gain: dict[int, float] = field(default_factory=dict)  # video -> min(watch_ratio, 1)
    like: dict[int, int] = field(default_factory=dict)  # video -> 0/1

    @property
    def key(self) -> str:
        return f"{self.user_id}:{self.date}"


def split(log: pd.DataFrame, min_candidates: int = 2, history_dates=HISTORY_DATES,
          target_dates=TARGET_DATES) -> tuple[pd.DataFrame, list[TargetList]]:
    """History rows (04-25..04-28 unless told) and target lists (04-29..04-30 unless told), lists
    sorted by ``at``. Rows of other days are left out.

    A video shown several times to the user that day is one candidate; its outcome is the best
    of its exposures (finished at least once, highest watch ratio, liked at least once). Lists with
    fewer than ``min_candidates`` distinct videos carry no ranking information and are dropped.
    """
    history = log[log["date"].isin(history_dates)].sort_values("time_ms", kind="stable")
    target = log[log["date"].isin(target_dates)].sort_values("time_ms", kind="stable")
    lists = []
    for (user, date), g in target.groupby(["user_id", "date"], sort=False):
        tl = TargetList(user_id=int(user), date=int(date), at_ms=int(g["time_ms"].min()), video_ids=[])
        for r in g.itertuples(index=False):
            v = int(r.video_id)
            gain = min(float(r.watch_ratio), 1.0)
            if v not in tl.finish:
                tl.video_ids.append(v)
                tl.finish[v], tl.watch_gain[v], tl.like[v] = 0, 0.0, 0
            tl.finish[v] = max(tl.finish[v], int(r.finish))
            tl.watch_gain[v] = max(tl.watch_gain[v], gain)
            tl.like[v] = max(tl.like[v], int(r.is_like))
        if len(tl.video_ids) >= min_candidates:
            lists.append(tl)
    lists.sort(key=lambda t: (t.at_ms, t.user_id, t.date))
    return history.reset_index(drop=True), lists


def smoke_slice(log: pd.DataFrame, n_users: int = 60) -> pd.DataFrame:
    """A tiny deterministic slice: the ``n_users`` smallest user ids that have a target list with
    at least two videos and some history, with all of their rows."""
    tgt = log[log["date"].isin(TARGET_DATES)]
    sizes = tgt.groupby(["user_id", "date"])["video_id"].nunique()
    with_list = set(sizes[sizes >= 2].reset_index()["user_id"])
    with_hist = set(log.loc[log["date"].isin(HISTORY_DATES), "user_id"])
    users = sorted(with_list & with_hist)[:n_users]
    return log[log["user_id"].isin(set(users))].reset_index(drop=True)
