"""Stands in for the feed-server binary in tests: `fake_feed_server.py --listen HOST:PORT`."""

import argparse
import json
import os
import signal
import sys
import threading
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stub_server import StubState, make_handler  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--listen", default=os.environ.get("FEED_LISTEN", "127.0.0.1:8080"))
p.add_argument("--fail", action="store_true", help="exit at once with an error")
p.add_argument("--profile", help="a profile file: its `name` becomes the variant answered")
args = p.parse_args()
if args.fail:
    print("fake feed-server: cannot start", flush=True)
    sys.exit(3)
host, port = args.listen.rsplit(":", 1)
variant = "stub"
if args.profile:
    with open(args.profile) as f:
        variant = json.load(f).get("name", "stub")
state = StubState(lambda s, u, ids, at: ids if variant == "stub" else list(reversed(ids)),
                  variant=variant)
httpd = ThreadingHTTPServer((host, int(port)), make_handler(state))
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
print(f"fake feed-server listening on {args.listen}", flush=True)
httpd.serve_forever()
