"""Argo CD health check and resource actions of FeedRollout, run with the real lua5.1
interpreter against the fixtures in Argo CD's own layout (health_test.yaml, action_test.yaml,
testdata/)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from lua_sandbox import LuaError, clean_returned, run_script, to_lua

ROOT = Path(__file__).resolve().parents[1]
CUSTOM = ROOT / "resource_customizations" / "feedroll.dev" / "FeedRollout"
ACTIONS = CUSTOM / "actions"
VERBS = ["promote", "promote-full", "pause", "resume", "abort", "retry"]
PHASES = ["Progressing", "Paused", "Promoting", "Succeeded", "RolledBack", "Aborted", "Failed"]


def load(path: Path):
    with path.open() as f:
        return yaml.safe_load(f)


HEALTH_TESTS = load(CUSTOM / "health_test.yaml")["tests"]
ACTION_TESTS = load(ACTIONS / "action_test.yaml")


@pytest.mark.parametrize("case", HEALTH_TESTS, ids=[t["inputPath"] for t in HEALTH_TESTS])
def test_health(case):
    obj = load(CUSTOM / case["inputPath"])
    got = run_script(CUSTOM / "health.lua", obj)
    assert got == case["healthStatus"]


def test_every_phase_has_a_health_fixture():
    seen = {load(CUSTOM / t["inputPath"]).get("status", {}).get("phase") for t in HEALTH_TESTS}
    assert set(PHASES) <= seen
    statuses = {t["healthStatus"]["status"] for t in HEALTH_TESTS}
    assert {"Healthy", "Progressing", "Suspended", "Degraded"} <= statuses


def test_every_fixture_is_used():
    used = {t["inputPath"] for t in HEALTH_TESTS}
    on_disk = {f"testdata/{p.name}" for p in (CUSTOM / "testdata").glob("*.yaml")}
    assert on_disk == used
    used = {t["inputPath"] for t in ACTION_TESTS["discoveryTests"]}
    used |= {t["inputPath"] for t in ACTION_TESTS["actionTests"]}
    used |= {t["expectedOutputPath"] for t in ACTION_TESTS["actionTests"]}
    on_disk = {f"testdata/{p.name}" for p in (ACTIONS / "testdata").glob("*.yaml")}
    assert on_disk == used


def test_generation_awareness_overrides_every_phase():
    """Whatever the (stale) phase says, a status behind the spec is Progressing."""
    base = load(CUSTOM / "testdata" / "healthy_succeeded.yaml")
    for phase in PHASES:
        obj = copy.deepcopy(base)
        obj["metadata"]["generation"] = 9
        obj["status"]["observedGeneration"] = 8
        obj["status"]["phase"] = phase
        got = run_script(CUSTOM / "health.lua", obj)
        assert got == {
            "status": "Progressing",
            "message": "Waiting for the operator to observe generation 9 (status is at generation 8)",
        }, phase


@pytest.mark.parametrize(
    "case", ACTION_TESTS["discoveryTests"], ids=[t["inputPath"] for t in ACTION_TESTS["discoveryTests"]]
)
def test_discovery(case):
    obj = load(ACTIONS / case["inputPath"])
    got = run_script(ACTIONS / "discovery.lua", obj)
    # Argo CD turns the returned map into a list of ResourceAction {name, disabled, displayName}.
    actions = sorted(({"name": k, **v} for k, v in got.items()), key=lambda a: a["name"])
    assert actions == sorted(case["result"], key=lambda a: a["name"])


def test_discovery_offers_every_action():
    for verb in VERBS:
        assert (ACTIONS / verb / "action.lua").is_file()
    got = run_script(ACTIONS / "discovery.lua", load(ACTIONS / "testdata" / "paused.yaml"))
    assert sorted(got) == sorted(VERBS)


@pytest.mark.parametrize(
    "case",
    ACTION_TESTS["actionTests"],
    ids=[f"{t['action']}:{t['inputPath']}" for t in ACTION_TESTS["actionTests"]],
)
def test_action(case):
    obj = load(ACTIONS / case["inputPath"])
    got = clean_returned(run_script(ACTIONS / case["action"] / "action.lua", obj), obj)
    assert got == load(ACTIONS / case["expectedOutputPath"])


@pytest.mark.parametrize("verb", VERBS)
def test_action_changes_only_the_command_annotation(verb):
    obj = load(ACTIONS / "testdata" / "progressing.yaml")
    got = clean_returned(run_script(ACTIONS / verb / "action.lua", obj, frozen_time=1764000000), obj)
    want = copy.deepcopy(obj)
    want["metadata"]["annotations"]["feedroll.dev/command"] = f"{verb}/1764000000"
    assert got == want


def test_every_action_has_a_test():
    assert {t["action"] for t in ACTION_TESTS["actionTests"]} == set(VERBS)


# The harness itself: it must behave like Argo CD's sandbox, or the tests above prove little.


def test_sandbox_has_no_string_library(tmp_path):
    script = tmp_path / "s.lua"
    script.write_text('return {status = string.upper("x")}')
    with pytest.raises(LuaError, match="string"):
        run_script(script, {})
    script.write_text('local s = "abc"\nreturn {status = s:sub(1, 1)}')
    with pytest.raises(LuaError):
        run_script(script, {})


def test_sandbox_has_no_io_and_only_os_module(tmp_path):
    script = tmp_path / "s.lua"
    script.write_text('return {status = io.open("/etc/passwd")}')
    with pytest.raises(LuaError):
        run_script(script, {})
    script.write_text('local json = require("json")\nreturn {}')
    with pytest.raises(LuaError, match="not found"):
        run_script(script, {})


def test_lua_literal_round_trip(tmp_path):
    script = tmp_path / "id.lua"
    script.write_text("return obj")
    value = {"a": [1, 2.5, "x\"y\\z\n\u00e9"], "b": {"c": True, "d": False}, "e": -3, "n": None}
    got = run_script(script, value)
    assert got == {"a": [1, 2.5, "x\"y\\z\n\u00e9"], "b": {"c": True, "d": False}, "e": -3}
    assert to_lua(None) == "nil"


def test_clean_returned_restores_empty_maps():
    old = {"spec": {"traffic": {"replicaRatio": {}}, "list": [{"x": {}}]}}
    new = {"spec": {"traffic": {"replicaRatio": []}, "list": [{"x": []}]}}
    assert clean_returned(new, old) == old
