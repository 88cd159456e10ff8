"""Starting and stopping the server binary (a fake one here) around a run."""

import json
import os
import stat
import sys

import pytest
import requests

from feedeval import cli
from feedeval.client import ServerError, ServerProcess
from synth import make_items, make_log

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def fake_binary(tmp_path):
    path = tmp_path / "feed-server"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE}/fake_feed_server.py \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_start_waits_for_ready_and_stop_ends_the_process(fake_binary):
    srv = ServerProcess(fake_binary)
    url = srv.start()
    proc = srv.proc
    try:
        assert requests.get(url + "/readyz", timeout=5).status_code == 200
    finally:
        srv.stop()
        srv.cleanup_log()
    assert proc.poll() is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/readyz", timeout=2)


def test_a_server_that_dies_is_reported_with_its_log(fake_binary):
    srv = ServerProcess(fake_binary, ["--fail"])
    with pytest.raises(ServerError, match="cannot start"):
        srv.start()
    srv.cleanup_log()


def test_missing_binary(tmp_path):
    srv = ServerProcess(str(tmp_path / "nope"))
    with pytest.raises(ServerError, match="not found"):
        srv.start()
    assert srv.log is None  # nothing left behind


def test_cli_starts_and_stops_its_own_server(fake_binary, tmp_path, monkeypatch):
    make_log(seed=3, users=6).to_parquet(tmp_path / "val.parquet")
    make_items().to_parquet(tmp_path / "item_features.parquet")
    started = []
    real_start = ServerProcess.start

    def spy(self):
        url = real_start(self)
        started.append((self.proc, url, self.log.name))
        return url
    monkeypatch.setattr(ServerProcess, "start", spy)
    code = cli.main(["--data", str(tmp_path), "--binary", fake_binary, "--quiet", "--bootstrap", "50",
                     "--no-tune"])
    assert code == 0
    (proc, url, log), = started
    assert proc.poll() is not None  # stopped after the run
    assert not os.path.exists(log)  # and its log removed after a successful run


def test_cli_replays_again_with_the_tuned_profile_and_reports_it(fake_binary, tmp_path, monkeypatch,
                                                                 capsys):
    make_log(seed=3, users=6).to_parquet(tmp_path / "val.parquet")
    make_items().to_parquet(tmp_path / "item_features.parquet")
    started = []
    real_start = ServerProcess.start

    def spy(self):
        started.append(list(self.extra_args))
        return real_start(self)
    monkeypatch.setattr(ServerProcess, "start", spy)
    out = tmp_path / "out.json"
    kept = tmp_path / "tuned.json"
    code = cli.main(["--data", str(tmp_path), "--binary", fake_binary, "--quiet", "--bootstrap", "50",
                     "--json", str(out), "--keep-tuned", str(kept)])
    assert code == 0
    # The default server, then one started with the profile the first one answered.
    assert started == [[], ["--profile", started[1][1]]]
    assert json.loads(kept.read_text())["weights"] == {"completion": 0.75, "brevity": 0.25}
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"feed-server", "tuned", "most-popular", "shortest-first", "random"}
    # The fake server ranks in reverse order under the tuned profile: the rows differ.
    assert res["methods"]["tuned"]["gauc_finish"]["value"] != res["methods"]["feed-server"]["gauc_finish"]["value"]
    assert res["tune"]["status"] == 200 and res["tune"]["lift"] == 0.5
    assert "vs_feed-server" not in res["methods"]["feed-server"]["gauc_finish"]
    assert res["tune"]["vs_default"]["gauc_finish"]["ci95"][0] <= res["tune"]["vs_default"]["gauc_finish"]["delta"]
    text = capsys.readouterr().out
    assert "feed-server, tuned profile" in text and "minus default profile" in text


def test_a_refused_tune_is_reported_and_the_run_goes_on(tmp_path):
    from feedeval.tuned import format_tune, tune_summary
    t = tune_summary((422, {"error": {"code": "too_few_exposures", "message": "holds 12"}}),
                     ("2022-04-25T00:00:00.000Z", "2022-04-29T00:00:00.000Z"))
    assert "too_few_exposures" in format_tune(t) and "holds 12" in format_tune(t)
