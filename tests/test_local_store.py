"""The file-backed rollout store, templates and events (analyzer.local): real files, real
processes writing at the same time, a real SIGKILL between the temp write and the replace."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from analyzer.argo.errors import TemplateError
from analyzer.controller.actions import request
from analyzer.local import LocalRolloutStore, LocalTemplates, LogEvents, StoreError, events_path, read_events
from analyzer.local.store import InvalidRollout, merge_patch
from analyzer.ports import NotFound, WriteConflict
from analyzer.rollout.spec import parse_rollout


def manifest(name: str = "demo", weights: tuple[int, ...] = (5, 25, 50)) -> dict[str, Any]:
    return {
        "apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
        "metadata": {"name": name, "namespace": "ml", "labels": {"app": "inference"}},
        "spec": {
            "trafficRouting": {"haproxy": {"socket": "/run/haproxy/admin.sock", "headerMap": "/tmp/h.map"}},
            "steps": [s for w in weights for s in ({"setWeight": w}, {"pause": {"duration": "10s"}})],
        },
    }


@pytest.fixture
def store(tmp_path: Path) -> LocalRolloutStore:
    return LocalRolloutStore(tmp_path / "store")


def test_apply_creates_then_keeps_status_and_bumps_generation_on_spec_change(store: LocalRolloutStore) -> None:
    created = store.apply(manifest())
    meta = created["metadata"]
    assert (meta["namespace"], meta["name"], meta["generation"]) == ("ml", "demo", 1)
    assert created["status"] == {} and meta["labels"] == {"app": "inference"}
    assert store.get("ml", "demo") == created
    written = store.update_status("ml", "demo", {"phase": "Progressing", "currentStepIndex": 2}, meta["resourceVersion"])
    assert store.apply(manifest()) == written  # same spec: nothing written
    changed = store.apply(manifest(weights=(10, 50)))
    assert changed["metadata"]["generation"] == 2
    assert changed["status"] == {"phase": "Progressing", "currentStepIndex": 2}  # kept, as a status subresource
    assert int(changed["metadata"]["resourceVersion"]) > int(written["metadata"]["resourceVersion"])
    parse_rollout(changed)  # what is stored is a valid rollout


def test_apply_rejects_an_invalid_manifest_naming_the_field(store: LocalRolloutStore) -> None:
    bad = manifest()
    bad["spec"]["trafficRouting"]["haproxy"] = {"backend": "be_app"}
    with pytest.raises(InvalidRollout, match=r"r\.yaml: spec\.trafficRouting\.haproxy\.socket: required field is missing"):
        store.apply(bad, source="r.yaml")
    assert store.list() == []


def test_update_status_is_optimistic(store: LocalRolloutStore) -> None:
    rv = store.apply(manifest())["metadata"]["resourceVersion"]
    first = store.update_status("ml", "demo", {"phase": "Progressing"}, rv)
    assert first["metadata"]["generation"] == 1  # status writes never bump the generation
    with pytest.raises(WriteConflict, match=f"resourceVersion {rv} is stale"):
        store.update_status("ml", "demo", {"phase": "Healthy"}, rv)
    assert store.get("ml", "demo")["status"] == {"phase": "Progressing"}  # type: ignore[index]
    with pytest.raises(NotFound):
        store.update_status("ml", "nope", {}, "1")
    assert store.get("ml", "nope") is None


def test_status_is_stored_as_strict_json(store: LocalRolloutStore) -> None:
    rv = store.apply(manifest())["metadata"]["resourceVersion"]
    store.update_status("ml", "demo", {"analysisRuns": [{"value": float("nan"), "limit": float("inf")}]}, rv)
    text = store.path("ml", "demo").read_text()
    assert "NaN" not in text.replace('"NaN"', "")  # no bare NaN token
    assert json.loads(text)["status"]["analysisRuns"] == [{"value": "NaN", "limit": "+Inf"}]


def test_patch_spec_is_a_merge_patch_that_bumps_generation(store: LocalRolloutStore) -> None:
    store.apply(manifest())
    obj = store.patch_spec("ml", "demo", {"paused": True, "requests": {"promote": "t1"}})
    assert obj["spec"]["paused"] is True and obj["spec"]["requests"] == {"promote": "t1"}
    assert obj["metadata"]["generation"] == 2
    same = store.patch_spec("ml", "demo", {"paused": True})
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]  # no-op
    obj = store.patch_spec("ml", "demo", {"paused": None})
    assert "paused" not in obj["spec"] and obj["metadata"]["generation"] == 3
    with pytest.raises(InvalidRollout, match=r"spec\.steps: must be a list"):
        store.patch_spec("ml", "demo", {"steps": "fast"})
    with pytest.raises(NotFound):
        store.patch_spec("ml", "nope", {"paused": True})


def test_merge_patch_follows_rfc_7386() -> None:
    # RFC 7386 appendix A examples.
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch(["a", "b"], ["c", "d"]) == ["c", "d"]
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_operator_verbs_work_on_the_local_store(store: LocalRolloutStore) -> None:
    store.apply(manifest())
    result = request(store, "ml", "demo", "abort", actor="test", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert store.get("ml", "demo")["spec"]["requests"]["abort"] == result.token  # type: ignore[index]


def test_resource_versions_are_monotonic_and_survive_a_lost_counter(store: LocalRolloutStore) -> None:
    versions = [int(store.apply(manifest(f"r{i}"))["metadata"]["resourceVersion"]) for i in range(3)]
    assert versions == sorted(versions) and len(set(versions)) == 3
    (store.directory / ".resource-version").unlink()
    again = store.patch_spec("ml", "r0", {"paused": True})
    assert int(again["metadata"]["resourceVersion"]) > versions[-1]
    assert [o["metadata"]["name"] for o in store.list()] == ["r0", "r1", "r2"]
    assert store.list("other") == []
    assert store.delete("ml", "r1") and not store.delete("ml", "r1")
    assert [o["metadata"]["name"] for o in store.list("ml")] == ["r0", "r2"]


# -- two processes -----------------------------------------------------------------------------


def _status_incrementer(directory: str, n: int) -> None:
    s = LocalRolloutStore(directory)
    done = 0
    while done < n:
        obj = s.get("ml", "demo")
        assert obj is not None
        status = dict(obj["status"])
        status["count"] = int(status.get("count", 0)) + 1
        try:
            s.update_status("ml", "demo", status, obj["metadata"]["resourceVersion"])
            done += 1
        except WriteConflict:
            continue


def _spec_patcher(directory: str, tag: str, n: int) -> None:
    s = LocalRolloutStore(directory)
    for i in range(n):
        s.patch_spec("ml", "demo", {"judge": {f"{tag}-{i}": True}})


def test_two_processes_never_lose_an_update(store: LocalRolloutStore) -> None:
    store.apply(manifest())
    ctx = multiprocessing.get_context("spawn")
    n = 60
    procs = [ctx.Process(target=_status_incrementer, args=(str(store.directory), n)) for _ in range(2)]
    procs += [ctx.Process(target=_spec_patcher, args=(str(store.directory), tag, n // 2)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    obj = store.get("ml", "demo")
    assert obj is not None
    assert obj["status"]["count"] == 2 * n  # every increment landed
    assert len(obj["spec"]["judge"]) == n and obj["metadata"]["generation"] == 1 + n
    assert int(obj["metadata"]["resourceVersion"]) == 1 + 2 * n + n  # apply + status writes + spec writes


# -- a crash between the temp write and the replace -------------------------------------------------


def _write_then_die(directory: str) -> None:
    import analyzer.local.store as mod

    def killed(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if str(dst).endswith("demo.json"):
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies after fsync, before the replace
        os.rename(src, dst)

    mod.os.replace = killed  # type: ignore[assignment]
    s = mod.LocalRolloutStore(directory)
    obj = s.get("ml", "demo")
    assert obj is not None
    s.update_status("ml", "demo", {"phase": "Degraded"}, obj["metadata"]["resourceVersion"])


def test_a_kill_before_the_replace_leaves_the_old_file(store: LocalRolloutStore) -> None:
    store.apply(manifest())
    old = store.update_status("ml", "demo", {"phase": "Progressing"}, store.get("ml", "demo")["metadata"]["resourceVersion"])  # type: ignore[index]
    p = multiprocessing.get_context("spawn").Process(target=_write_then_die, args=(str(store.directory),))
    p.start()
    p.join(timeout=60)
    assert p.exitcode == -signal.SIGKILL
    strays = list((store.directory / "ml").glob(".demo.json.tmp-*"))
    assert len(strays) == 1 and '"Degraded"' in strays[0].read_text()  # the new content never landed
    assert store.get("ml", "demo") == old
    assert [o["metadata"]["name"] for o in store.list()] == ["demo"]
    # The dead writer's lock is gone with it; the next write succeeds and sweeps the stray file.
    new = store.update_status("ml", "demo", {"phase": "Healthy"}, old["metadata"]["resourceVersion"])
    assert new["status"] == {"phase": "Healthy"}
    assert not list((store.directory / "ml").glob(".demo.json.tmp-*"))


# -- bad files ------------------------------------------------------------------------------------


def test_bad_files_give_an_error_naming_the_file(store: LocalRolloutStore) -> None:
    store.apply(manifest())
    path = store.path("ml", "demo")
    path.write_text('{"metadata": ')
    with pytest.raises(StoreError, match=rf"{path}: not valid JSON: line 1, column 14"):
        store.get("ml", "demo")
    with pytest.raises(StoreError, match=str(path)):
        store.list()
    path.write_text(json.dumps({"metadata": {"name": "other", "namespace": "ml"}}))
    with pytest.raises(StoreError, match=rf"{path}: metadata.name: 'other' does not match the file name"):
        store.get("ml", "demo")
    path.write_text(json.dumps({"metadata": {"name": "demo", "namespace": "ml", "resourceVersion": 3,
                                             "generation": 1}}))
    with pytest.raises(StoreError, match=r"metadata.resourceVersion: must be an integer string, got 3"):
        store.get("ml", "demo")
    path.write_text("[]")
    with pytest.raises(StoreError, match="expected a JSON object"):
        store.update_status("ml", "demo", {}, "1")
    with pytest.raises(StoreError, match="rollout name 'Bad_Name' is not a valid name"):
        store.get("ml", "Bad_Name")
    with pytest.raises(StoreError, match="namespace '../etc' is not a valid name"):
        store.get("../etc", "demo")


def test_a_store_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="cannot create the store directory|not a directory"):
        LocalRolloutStore(tmp_path / "f")


# -- templates -----------------------------------------------------------------------------------

TEMPLATE = """apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}{ns}}}
spec:
  metrics:
  - name: m
    provider: {{prometheus: {{address: http://127.0.0.1:9090, query: up}}}}
    successCondition: result[0] == 1
"""


def test_templates_from_files_and_directories(tmp_path: Path) -> None:
    d = tmp_path / "templates"
    d.mkdir()
    (d / "a.yaml").write_text(TEMPLATE.format(name="success-rate", ns=""))
    (d / "b.yml").write_text(TEMPLATE.format(name="scoped", ns=", namespace: ml")
                             + "---\n" + TEMPLATE.format(name="latency", ns="").replace("kind: AnalysisTemplate",
                                                                                          "kind: ClusterAnalysisTemplate"))
    (d / "notes.txt").write_text("not yaml: [")
    t = LocalTemplates(d)
    assert t.get("ml", "success-rate")["metadata"]["name"] == "success-rate"  # type: ignore[index]
    assert t.get("ml", "scoped") is not None and t.get("other", "scoped") is None
    assert t.get("ml", "latency") is None and t.get("ml", "latency", cluster_scope=True) is not None
    assert t.get("ml", "missing") is None
    (tmp_path / "dup.yaml").write_text(TEMPLATE.format(name="success-rate", ns=""))
    with pytest.raises(TemplateError, match=r"defined more than once .*a\.yaml.*dup\.yaml"):
        LocalTemplates([d, tmp_path / "dup.yaml"]).get("ml", "success-rate")
    (d / "c.yaml").write_text("kind: [")
    with pytest.raises(TemplateError, match=r"c\.yaml: invalid YAML"):
        t.get("ml", "success-rate")
    with pytest.raises(TemplateError, match=r"nope: no such file"):
        LocalTemplates(tmp_path / "nope")


# -- events --------------------------------------------------------------------------------------


def test_events_are_json_lines_with_a_status_snapshot(store: LocalRolloutStore) -> None:
    obj = store.apply(manifest())
    obj = store.update_status("ml", "demo", {"phase": "Progressing", "currentStepIndex": 1, "updateHash": "abc",
                                             "weights": {"desired": 5, "verified": 5}},
                              obj["metadata"]["resourceVersion"])
    times = iter([datetime(2026, 1, 1, 0, 0, 1, 250000, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)])
    echoed: list[dict[str, Any]] = []
    sink = LogEvents(store.directory, clock=lambda: next(times), echo=echoed.append)
    sink.emit(obj, "RolloutStepCompleted", "Rollout step 1/6 completed (setWeight: 5)")
    sink.emit(obj, "RolloutAborted", "aborted", warning=True)
    path = events_path(store.directory, "ml", "demo")
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["time"] == "2026-01-01T00:00:01.250Z" and first["ts"] == 1767225601.25
    assert first["state"] == {"phase": "Progressing", "step": 1, "steps": 6, "desiredWeight": 5, "verifiedWeight": 5,
                              "abort": False, "promoted": False, "updateHash": "abc", "attempt": None}
    assert first["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert echoed[1]["warning"] is True
    with path.open("a") as f:
        f.write('{"ts": 1767225603, "reas')  # a crash mid-append
    assert [e["reason"] for e in read_events(path)] == ["RolloutStepCompleted", "RolloutAborted"]
    assert store.list() and [o["metadata"]["name"] for o in store.list()] == ["demo"]  # events are not rollouts


def test_emit_never_raises(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the directory should be")
    sink = LogEvents(tmp_path / "blocked", echo=lambda r: (_ for _ in ()).throw(RuntimeError("echo broke")))
    sink.emit({"metadata": {"name": "demo"}}, "RolloutUpdated", "x")  # unwritable: logged, not raised
    LogEvents(tmp_path / "ok", echo=lambda r: 1 / 0).emit({"metadata": {"name": "demo"}}, "RolloutUpdated", "x")
    assert len(read_events(events_path(tmp_path / "ok", "default", "demo"))) == 1
