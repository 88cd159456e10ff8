"""What the operator guarantees on every pod it runs, read from its Rust sources so the chart's
PodMonitor and the platform guide's scrape job cannot drift from it."""

from __future__ import annotations

import re

from chart_render import ROOT


def operator_const(path: str, name: str) -> str:
    """The value of `pub const NAME: &str = "...";` in a source file of the repository."""
    m = re.search(rf'pub const {name}: &str = "([^"]+)";', (ROOT / path).read_text())
    assert m, f"{name} not found in {path}"
    return m.group(1)


# The label on every pod of a FeedRollout (its name).
ROLLOUT_LABEL = operator_const("operator/src/desired/mod.rs", "LABEL_ROLLOUT")
# The name of the feed-server's port in every rollout pod.
HTTP_PORT = operator_const("operator/src/desired/ports.rs", "HTTP_PORT")
# The label on every pod of a FeedRollout naming its track (stable or canary).
TRACK_LABEL = operator_const("operator/src/desired/mod.rs", "LABEL_TRACK")
# Its values, one per Deployment the operator runs.
TRACKS = (
    operator_const("crds/src/lib.rs", "TRACK_STABLE"),
    operator_const("crds/src/lib.rs", "TRACK_CANARY"),
)
