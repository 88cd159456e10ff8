"""HTTP client for feed-server (keep-alive session, batched requests) and a managed server process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter

import requests

MAX_VIDEOS_PER_PUT = 5000
MAX_EVENTS_PER_POST = 1000
MAX_RANK_IDS = 1000


class ServerError(RuntimeError):
    pass


def _check(resp: requests.Response, what: str) -> requests.Response:
    if resp.status_code >= 300:
        raise ServerError(f"{what}: HTTP {resp.status_code}: {resp.text[:500]}")
    return resp


class FeedServerClient:
    def __init__(self, base_url: str, timeout: float = 60.0):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/json"
        self.events_sent = 0
        self.events_accepted = 0
        self.rejections: Counter = Counter()
        self.rejection_examples: list[dict] = []
        self.variants: Counter = Counter()

    def close(self):
        self.session.close()

    def ready(self) -> bool:
        try:
            return self.session.get(self.base + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def put_videos(self, videos: list[dict]) -> None:
        for i in range(0, len(videos), MAX_VIDEOS_PER_PUT):
            _check(self.session.put(self.base + "/v1/videos", json=videos[i:i + MAX_VIDEOS_PER_PUT],
                                    timeout=self.timeout), "PUT /v1/videos")

    def post_events(self, events: list[dict]) -> None:
        for i in range(0, len(events), MAX_EVENTS_PER_POST):
            batch = events[i:i + MAX_EVENTS_PER_POST]
            body = _check(self.session.post(self.base + "/v1/events", json={"events": batch},
                                            timeout=self.timeout), "POST /v1/events").json()
            self.events_sent += len(batch)
            self.events_accepted += int(body.get("accepted", 0))
            for rej in body.get("rejected") or []:
                self.rejections[rej.get("code", "?")] += 1
                if len(self.rejection_examples) < 5:
                    idx = rej.get("index")
                    ev = batch[idx] if isinstance(idx, int) and 0 <= idx < len(batch) else None
                    self.rejection_examples.append({"rejection": rej, "event": ev})

    def rank(self, user_id: str, video_ids: list[str], at: str) -> list[str]:
        """The candidates in the server's order, best first."""
        return [str(item["video_id"]) for item in self.rank_items(user_id, video_ids, at)]

    def rank_items(self, user_id: str, video_ids: list[str], at: str, explain: bool = False) -> list[dict]:
        """The ranked items as answered (with ``signals`` and ``explain`` when ``explain``)."""
        if len(video_ids) > MAX_RANK_IDS:
            raise ValueError(f"at most {MAX_RANK_IDS} candidates per rank request")
        req = {"user_id": user_id, "video_ids": video_ids, "at": at}
        if explain:
            req["explain"] = True
        body = _check(self.session.post(self.base + "/v1/rank", json=req, timeout=self.timeout),
                      "POST /v1/rank").json()
        if "variant" in body:
            self.variants[str(body["variant"])] += 1
        return list(body.get("items", []))


    def tune(self, since: str, until: str, objective="finish") -> tuple[int, dict]:
        """``POST /v1/admin/tune``: (status, body). A refusal (4xx) is returned, not raised: the
        caller reports it beside the other figures."""
        resp = self.session.post(self.base + "/v1/admin/tune",
                                 json={"since": since, "until": until, "objective": objective},
                                 timeout=self.timeout)
        try:
            body = resp.json()
        except ValueError:
            body = {"error": {"code": "?", "message": resp.text[:500]}}
        if resp.status_code >= 500:
            raise ServerError(f"POST /v1/admin/tune: HTTP {resp.status_code}: {resp.text[:500]}")
        return resp.status_code, body


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """Starts ``feed-server --listen 127.0.0.1:PORT`` (embedded store), waits for /readyz, and stops
    it on exit (context manager; also on SIGTERM/SIGINT through the caller's handlers)."""

    def __init__(self, binary: str, extra_args: list[str] | None = None, ready_timeout: float = 60.0):
        self.binary = binary
        self.extra_args = extra_args or []
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.log = None  # temporary file with the server's output, created by start()

    def start(self) -> str:
        if not os.access(self.binary, os.X_OK):
            raise ServerError(f"{self.binary} not found or not executable "
                              "(build it: cargo build --release -p feed-server)")
        if self.log is None:
            self.log = tempfile.NamedTemporaryFile(prefix="feed-server-eval-", suffix=".log", delete=False)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env.pop("FEED_REDIS_URL", None)  # embedded store
        env["FEED_LISTEN"] = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen([self.binary, "--listen", f"127.0.0.1:{port}", *self.extra_args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        client = FeedServerClient(self.url)
        deadline = time.monotonic() + self.ready_timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServerError(f"feed-server exited with {self.proc.returncode} before ready:\n"
                                      + self.log_tail())
                if client.ready():
                    return self.url
                time.sleep(0.1)
        finally:
            client.close()
        self.stop()
        raise ServerError(f"feed-server not ready after {self.ready_timeout:.0f}s:\n" + self.log_tail())

    def log_tail(self, n: int = 30) -> str:
        if self.log is None:
            return ""
        try:
            with open(self.log.name, "r", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def cleanup_log(self) -> None:
        if self.log is None:
            return
        try:
            self.log.close()
            os.unlink(self.log.name)
        except OSError:
            pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
