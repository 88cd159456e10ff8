"""Small synthetic KuaiRand-shaped tables for the tests."""

import random
from datetime import datetime, timedelta, timezone

import pandas as pd

DAYS = [20220425, 20220426, 20220427, 20220428, 20220429, 20220430]


def day_start_ms(date: int) -> int:
    d = datetime.strptime(str(date), "%Y%m%d").replace(tzinfo=timezone(timedelta(hours=8)))
    return int(d.timestamp() * 1000)


def log_row(user, video, date, time_ms, click=0, play=0, finish=0, like=0, comment=0, forward=0, ratio=None):
    return {
        "user_id": user, "video_id": video, "date": date, "time_ms": time_ms,
        "is_click": click, "is_like": like, "is_comment": comment, "is_forward": forward,
        "play_time_ms": play, "watch_ratio": ratio if ratio is not None else (1.0 if finish else 0.2 * click),
        "finish": finish,
    }


def make_log(seed=1, users=8, videos=12, per_day=4):
    """Each user sees ``per_day`` distinct videos per day; a video's finish chance grows with its id,
    and finish = watch ratio >= 1, so an oracle ordering is easy to state."""
    rng = random.Random(seed)
    rows = []
    for date in DAYS:
        for u in range(users):
            for v in rng.sample(range(videos), per_day):
                t = day_start_ms(date) + rng.randint(0, 86_000_000)
                finish = int(rng.random() < (v + 1) / (videos + 1))
                click = int(finish or rng.random() < 0.4)
                ratio = 1.0 + rng.random() if finish else (rng.random() * 0.9 if click else 0.0)
                rows.append(log_row(u, v, date, t, click=click, play=int(ratio * 10_000), finish=finish,
                                    like=int(finish and rng.random() < 0.5), ratio=ratio))
    return pd.DataFrame(rows)


def make_items(videos=12, seed=2):
    rng = random.Random(seed)
    return pd.DataFrame({
        "video_id": pd.array(range(videos), dtype="Int64"),
        "author_id": [1000 + v % 4 for v in range(videos)],
        "video_type": ["NORMAL"] * videos,
        "upload_dt": ["2022-04-10"] * videos,
        "video_duration": pd.array([None if v == 0 else 10_000.0 + 1000 * v for v in range(videos)], dtype="Float64"),
        "tag": ["unknown" if v == 1 else f"{v % 3},{v % 5 + 10}" for v in range(videos)],
        # aggregate counters (future information): must never reach the catalog
        "show_cnt": [rng.random() * 1e6 for _ in range(videos)],
        "like_cnt": [rng.random() * 1e4 for _ in range(videos)],
    })
