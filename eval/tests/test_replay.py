"""End to end: the CLI against a stub of feed-server's HTTP API on synthetic data."""

import json

import pytest

from feedeval import cli
from feedeval.data import TARGET_DATES, normalise_log, split
from stub_server import StubServer
from synth import make_items, make_log


@pytest.fixture
def dataset(tmp_path):
    log = make_log(seed=5, users=10, videos=12, per_day=4)
    log.to_parquet(tmp_path / "val.parquet")
    make_items(videos=12).to_parquet(tmp_path / "item_features.parquet")
    return tmp_path, normalise_log(log)


def oracle(log, reverse=False):
    """A ranker that peeks at the target list's outcomes: highest (watch gain, like) first."""
    _, lists = split(log)
    # capped gains tie among finished videos; liked ones (always finished here) go first
    keys = {(t.user_id, t.at_ms): {v: (t.watch_gain[v], t.like[v]) for v in t.video_ids} for t in lists}

    def rank(state, user_id, ids, at):
        g = keys[(int(user_id), round(at * 1000))]
        return sorted(ids, key=lambda v: g[int(v)], reverse=not reverse)
    return rank


def run(dataset, ranker, tmp_path, *extra):
    data_dir, log = dataset
    out = tmp_path / "out.json"
    with StubServer(ranker) as stub:
        code = cli.main(["--data", str(data_dir), "--server", stub.url, "--json", str(out),
                         "--quiet", "--bootstrap", "200", *extra])
    return code, json.loads(out.read_text()), stub.state


def test_oracle_server_scores_perfectly(dataset, tmp_path, capsys):
    code, res, state = run(dataset, oracle(dataset[1]), tmp_path)
    assert code == 0
    assert state.violations == []
    fs = res["methods"]["feed-server"]
    assert fs["gauc_finish"]["value"] == pytest.approx(1.0)
    assert fs["ndcg10_watch"]["value"] == pytest.approx(1.0)
    assert fs["ndcg10_like"]["value"] == pytest.approx(1.0)
    assert fs["gauc_finish"]["vs_most-popular"]["delta"] > 0
    # every method is scored on the same lists
    for m in ("most-popular", "random"):
        for k in ("gauc_finish", "ndcg10_watch", "ndcg10_like"):
            assert res["methods"][m][k]["lists"] == fs[k]["lists"]
        assert res["methods"][m]["gauc_finish"]["value"] < 1.0
    out = capsys.readouterr().out
    assert "feed-server (variant stub)" in out and "most-popular" in out and "random" in out


def test_reversed_server_scores_zero_gauc(dataset, tmp_path):
    code, res, _ = run(dataset, oracle(dataset[1], reverse=True), tmp_path)
    assert code == 0
    assert res["methods"]["feed-server"]["gauc_finish"]["value"] == pytest.approx(0.0)
    assert res["methods"]["feed-server"]["gauc_finish"]["vs_most-popular"]["delta"] < 0


def test_replay_sends_history_catalog_and_one_rank_per_list(dataset, tmp_path):
    _, log = dataset
    history, lists = split(log)
    code, res, state = run(dataset, oracle(log), tmp_path)
    assert code == 0
    assert len(state.videos) == 12
    # all history events (every row an impression) reach the server before the last target list
    assert sum(e["type"] == "impression" for e in state.events) == len(history)
    assert sum(e["type"] == "complete" for e in state.events) == int(history.finish.sum())
    assert len(state.rank_calls) == len(lists) == res["lists"]
    first = {(t.user_id, t.date): t for t in lists}
    for call, t in zip(state.rank_calls, lists):
        assert call["user_id"] == str(t.user_id)
        assert sorted(map(int, call["video_ids"])) == sorted(t.video_ids)
    assert res["replay"]["events_accepted"] == res["replay"]["events_sent"]
    assert len(first) == len(lists)


def test_candidate_order_sent_to_the_server_is_shuffled(dataset, tmp_path):
    """A server that keeps the input order must not profit from the log's exposure order."""
    code, res, state = run(dataset, lambda s, u, ids, at: ids, tmp_path)
    assert code == 0
    _, lists = split(dataset[1])
    same = sum(list(map(int, c["video_ids"])) == t.video_ids for c, t in zip(state.rank_calls, lists))
    assert same < len(lists)


def test_rejected_events_fail_the_run(dataset, tmp_path):
    data_dir, log = dataset
    items = make_items(videos=12)
    items[items.video_id < 6].to_parquet(data_dir / "item_features.parquet")  # half the catalog missing
    code, res, _ = run(dataset, oracle(log), tmp_path)
    assert code == 1
    assert res["replay"]["rejections"]["unknown_video"] > 0
