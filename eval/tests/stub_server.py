"""A minimal stand-in for feed-server's HTTP API, for testing the replay client end to end.

It checks what the harness sends (catalog first, events in time order and never after the `at` of
a rank request, batch limits) and ranks with a pluggable function."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class StubState:
    def __init__(self, ranker, variant="stub"):
        self.ranker = ranker  # (state, user_id, video_ids, at_seconds) -> ordered ids
        self.variant = variant
        self.tune_calls: list[dict] = []
        self.videos: dict[str, dict] = {}
        self.events: list[dict] = []
        self.rank_calls: list[dict] = []
        self.violations: list[str] = []
        self.last_ts = float("-inf")
        self.lock = threading.Lock()


def make_handler(state: StubState):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # one write per response (no Nagle / delayed-ACK stalls on keep-alive)

        def log_message(self, *a):
            pass

        def _send(self, code, body):
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _body(self):
            n = int(self.headers.get("Content-Length", 0))
            return json.loads(self.rfile.read(n))

        def do_GET(self):
            if self.path in ("/readyz", "/healthz"):
                return self._send(200, {"status": "ok"})
            self._send(404, {"error": {"code": "not_found", "message": self.path}})

        def do_PUT(self):
            if self.path != "/v1/videos":
                return self._send(404, {"error": {"code": "not_found", "message": self.path}})
            vids = self._body()
            with state.lock:
                if len(vids) > 5000:
                    state.violations.append("more than 5000 videos in one PUT")
                for v in vids:
                    for k in ("id", "creator_id", "published_at", "duration_ms", "tags", "content_type"):
                        if k not in v:
                            state.violations.append(f"video without {k}")
                    state.videos[v["id"]] = v
            self._send(200, {"upserted": len(vids)})

        def do_POST(self):
            body = self._body()
            with state.lock:
                if self.path == "/v1/events":
                    evs = body["events"]
                    if len(evs) > 1000:
                        state.violations.append("more than 1000 events in one POST")
                    accepted, rejected = 0, []
                    for i, e in enumerate(evs):
                        if e["video_id"] not in state.videos:
                            rejected.append({"index": i, "code": "unknown_video", "message": e["video_id"]})
                            continue
                        ts = parse_ts(e["ts"])
                        if ts < state.last_ts:
                            state.violations.append("events out of time order")
                        state.last_ts = ts
                        state.events.append(e)
                        accepted += 1
                    return self._send(200, {"accepted": accepted, "rejected": rejected})
                if self.path == "/v1/rank":
                    at = parse_ts(body["at"])
                    if state.last_ts >= at:
                        state.violations.append("rank request after an event at or past its time")
                    known = [v for v in body["video_ids"] if v in state.videos]
                    state.rank_calls.append(body)
                    order = state.ranker(state, body["user_id"], known, at)
                    items = [{"video_id": v, "creator_id": state.videos[v]["creator_id"], "score": 0.0}
                             for v in order]
                    return self._send(200, {"user_id": body["user_id"], "variant": state.variant,
                                            "items": items, "next_cursor": None})
                if self.path == "/v1/admin/tune":
                    # Like feed-server: a profile document, held-out figures, the fit's choices.
                    state.tune_calls.append(body)
                    quality = {"gauc_finish": 0.7, "ndcg10_watch": 0.9, "ndcg10_like": None,
                               "lists_finish": 3, "lists_watch": 4, "lists_like": 0}
                    return self._send(200, {
                        "profile": {"version": 2, "name": "tuned",
                                    "weights": {"completion": 0.75, "brevity": 0.25}},
                        "objective": {"finish": 1.0, "watch": 0.0, "like": 0.0},
                        "exposures": {"window": len(state.events), "training": 1, "held_out": 1,
                                      "held_out_since": body["since"]},
                        "held_out": {"tuned": quality, "current": quality},
                        "fit": {"prior_scale": 1.0, "lift": 0.5, "selection_metric": 0.7},
                        "log": {"events": len(state.events), "max_events": 200000}})
            self._send(404, {"error": {"code": "not_found", "message": self.path}})

    return H


class StubServer:
    def __init__(self, ranker):
        self.state = StubState(ranker)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        return False
