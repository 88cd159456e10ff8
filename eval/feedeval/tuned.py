"""The tuned profile's part of the report: what `POST /v1/admin/tune` answered on the history
window (its own held-out figures) and how the tuned profile did on the target lists against the
default profile (paired difference with a bootstrap interval over users)."""

from __future__ import annotations

from .report import METRICS


def tune_summary(answer: tuple[int, dict], window: tuple[str, str]) -> dict:
    """The JSON summary of a tune answer (status, body) for ``window`` (since, until)."""
    status, body = answer
    out = {"status": status, "since": window[0], "until": window[1], "objective": "finish"}
    if status != 200:
        out["error"] = body.get("error", body)
        return out
    out.update({
        "weights": body["profile"].get("weights"),
        "lift": body["fit"]["lift"],
        "prior_scale": body["fit"]["prior_scale"],
        "exposures": body["exposures"],
        "held_out": body["held_out"],
    })
    return out


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def format_tune(t: dict) -> str:
    """A few lines for the printed report."""
    if t["status"] != 200:
        err = t.get("error", {})
        return (f"tuned profile: none -- POST /v1/admin/tune answered {t['status']} "
                f"{err.get('code', '?')}: {err.get('message', '')}")
    w = t["weights"] or {}
    weights = ", ".join(f"{k} {v:.3g}" for k, v in sorted(w.items(), key=lambda kv: -kv[1]) if v > 0)
    x = t["exposures"]
    h = t["held_out"]
    lines = [
        f"tuned profile (POST /v1/admin/tune on the history window, objective finish): {weights}; "
        f"lift {t['lift']}, prior strengths x{t['prior_scale']}",
        f"  its own held-out slice ({x['held_out']} of {x['window']} history exposures, from "
        f"{x['held_out_since']}): GAUC finish tuned {_f(h['tuned']['gauc_finish'])} vs current "
        f"{_f(h['current']['gauc_finish'])}, NDCG@10 watch {_f(h['tuned']['ndcg10_watch'])} vs "
        f"{_f(h['current']['ndcg10_watch'])}, like {_f(h['tuned']['ndcg10_like'])} vs "
        f"{_f(h['current']['ndcg10_like'])}",
    ]
    vs = t.get("vs_default")
    if vs:
        cells = []
        for key, title in METRICS:
            d = vs.get(key)
            cells.append(f"{title}: " + (f"{d['delta']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]"
                                         if d else "n/a"))
        lines.append("feed-server, tuned profile minus default profile on the target lists "
                     "(95% CI, bootstrap over users):")
        lines.append("  " + "   ".join(cells))
    return "\n".join(lines)
