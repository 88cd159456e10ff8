"""argocd/argocd-cm.yaml registers exactly the scripts under resource_customizations/ (the
files are the source; this test fails when the ConfigMap is stale). Regenerate with
    UPDATE_ARGOCD_CM=1 .venv/bin/python -m pytest -q argocd/tests/test_argocd_cm.py
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CUSTOM = ROOT / "resource_customizations" / "feedroll.dev" / "FeedRollout"
CM = ROOT / "argocd-cm.yaml"
KEY = "feedroll.dev_FeedRollout"
VERBS = ["promote", "promote-full", "pause", "resume", "abort", "retry"]

HEADER = """\
# Registers the FeedRollout health check and resource actions with Argo CD. Merge these keys
# into your argocd-cm (for example with a kustomize patch, or `kubectl -n argocd patch cm
# argocd-cm --patch-file argocd/argocd-cm.yaml`); nothing else in argocd-cm changes.
#
# Generated from argocd/resource_customizations/feedroll.dev/FeedRollout/ (the scripts there,
# tested with lua5.1 by argocd/tests); argocd/tests/test_argocd_cm.py fails when this file is
# stale. The scripts need no Lua standard libraries, so no
# resource.customizations.useOpenLibs.feedroll.dev_FeedRollout key.
#
# No ignoreDifferences: the actions only set the annotation feedroll.dev/command, which is not
# in Git, and the operator writes only status and the objects it owns, so a synced FeedRollout
# never shows drift.
"""


def literal_str_representer(dumper, data):
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


class Dumper(yaml.SafeDumper):
    pass


Dumper.add_representer(str, literal_str_representer)


def expected() -> dict:
    actions = {
        "discovery.lua": (CUSTOM / "actions" / "discovery.lua").read_text(),
        "definitions": [
            {"name": verb, "action.lua": (CUSTOM / "actions" / verb / "action.lua").read_text()}
            for verb in VERBS
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argocd-cm",
            "namespace": "argocd",
            "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
        },
        "data": {
            f"resource.customizations.health.{KEY}": (CUSTOM / "health.lua").read_text(),
            f"resource.customizations.actions.{KEY}": yaml.dump(
                actions, Dumper=Dumper, sort_keys=False, width=1000
            ),
        },
    }


def render() -> str:
    return HEADER + yaml.dump(expected(), Dumper=Dumper, sort_keys=False, width=1000)


def test_argocd_cm_is_current():
    if os.environ.get("UPDATE_ARGOCD_CM"):
        CM.write_text(render())
    assert CM.read_text() == render(), "argocd/argocd-cm.yaml is stale; see this test's docstring"


def test_argocd_cm_parses_back_to_the_scripts():
    cm = yaml.safe_load(CM.read_text())
    assert cm["data"][f"resource.customizations.health.{KEY}"] == (CUSTOM / "health.lua").read_text()
    actions = yaml.safe_load(cm["data"][f"resource.customizations.actions.{KEY}"])
    assert actions["discovery.lua"] == (CUSTOM / "actions" / "discovery.lua").read_text()
    names = [d["name"] for d in actions["definitions"]]
    assert names == VERBS
    for d in actions["definitions"]:
        assert d["action.lua"] == (CUSTOM / "actions" / d["name"] / "action.lua").read_text()
