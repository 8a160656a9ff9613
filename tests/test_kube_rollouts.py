"""KubeRolloutStore and the watch helper against the fake API server with our CRD registered:
optimistic status writes, spec merge patches, generation, lists, watch with bookmarks and 410."""

from __future__ import annotations

import threading
import time

import pytest
from test_kube_support import MR, rollout, settled_requests, with_crd

from analyzer.kube.errors import KubeError, WatchExpired
from analyzer.kube.rollouts import KubeRolloutStore
from analyzer.ports import NotFound, WriteConflict

STATUS = {"phase": "Progressing", "message": "step 0: weight 5", "observedGeneration": 1, "currentStepIndex": 0}


@pytest.fixture
def store(fake_kube):
    with_crd(fake_kube)
    fake_kube.create(rollout())
    return KubeRolloutStore(fake_kube.api_client())


def test_get_and_404(store):
    got = store.get("default", "inference")
    assert got is not None
    assert got["kind"] == "ModelRollout" and got["metadata"]["generation"] == 1 and got["metadata"]["resourceVersion"]
    assert store.get("default", "missing") is None
    assert store.get("elsewhere", "inference") is None


def test_update_status_writes_status_only_and_keeps_spec(fake_kube, store):
    obj = store.get("default", "inference")
    out = store.update_status("default", "inference", STATUS, obj["metadata"]["resourceVersion"])
    assert out["status"]["phase"] == "Progressing" and out["status"]["currentStepIndex"] == 0
    stored = fake_kube.get(*MR, "inference")
    assert stored["status"] == out["status"]
    assert stored["spec"] == obj["spec"] and stored["metadata"]["generation"] == 1  # status never bumps generation
    assert stored["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]
    # the whole status is replaced: a key the engine dropped disappears
    smaller = {"phase": "Paused", "message": "waiting"}
    out = store.update_status("default", "inference", smaller, stored["metadata"]["resourceVersion"])
    assert out["status"] == smaller
    writes = [r for r in settled_requests(fake_kube) if r["method"] == "PUT"]
    assert writes and all(r["path"].endswith("/modelrollouts/inference/status") for r in writes)


def test_stale_update_status_is_a_write_conflict_and_changes_nothing(fake_kube, store):
    obj = store.get("default", "inference")
    old_rv = obj["metadata"]["resourceVersion"]
    store.update_status("default", "inference", STATUS, old_rv)
    before = fake_kube.get(*MR, "inference")
    with pytest.raises(WriteConflict, match="409 Conflict: Operation cannot be fulfilled"):
        store.update_status("default", "inference", {"phase": "Degraded", "message": "stale writer"}, old_rv)
    assert fake_kube.get(*MR, "inference") == before
    assert before["status"]["phase"] == "Progressing"
    # a spec change by someone else also makes our copy stale
    fake_kube.patch(*MR, "inference", {"spec": {"paused": True}})
    with pytest.raises(WriteConflict):
        store.update_status("default", "inference", {"phase": "Healthy"}, before["metadata"]["resourceVersion"])
    assert fake_kube.get(*MR, "inference")["status"] == before["status"]


def test_invalid_status_and_missing_objects(store):
    obj = store.get("default", "inference")
    with pytest.raises(KubeError, match=r"422 Invalid: .*status.phase.*Unsupported value: \"Exploded\"") as err:
        store.update_status("default", "inference", {"phase": "Exploded"}, obj["metadata"]["resourceVersion"])
    assert not isinstance(err.value, WriteConflict)
    with pytest.raises(NotFound, match="404"):
        store.update_status("default", "missing", STATUS, obj["metadata"]["resourceVersion"])
    with pytest.raises(NotFound, match="modelrollouts.rollouts.analyzer.dev default/missing"):
        store.patch_spec("default", "missing", {"paused": True})
    with pytest.raises(KubeError, match="no resourceVersion"):
        store.update_status("default", "inference", STATUS, "")


def test_patch_spec_merges_bumps_generation_and_keeps_status(fake_kube, store):
    obj = store.get("default", "inference")
    store.update_status("default", "inference", STATUS, obj["metadata"]["resourceVersion"])
    out = store.patch_spec("default", "inference", {"paused": True, "requests": {"promote": "tok-1"}})
    assert out["spec"]["paused"] is True and out["spec"]["requests"] == {"promote": "tok-1"}
    assert out["spec"]["steps"] == obj["spec"]["steps"]  # merge patch: the rest of spec stays
    assert out["metadata"]["generation"] == 2
    assert out["status"] == fake_kube.get(*MR, "inference")["status"] and out["status"]["phase"] == "Progressing"
    out = store.patch_spec("default", "inference", {"paused": None})  # null deletes (RFC 7386)
    assert "paused" not in out["spec"] and out["metadata"]["generation"] == 3
    # a status sneaked into a spec patch is not a status write
    out = store.patch_spec("default", "inference", {"requests": {"promote": "tok-2"}})
    assert out["status"]["phase"] == "Progressing"
    patches = [r for r in settled_requests(fake_kube) if r["method"] == "PATCH"]
    assert {r["content_type"].split(";")[0] for r in patches} == {"application/merge-patch+json"}


def test_list_one_namespace_and_all(fake_kube, store):
    fake_kube.create_namespace("ml")
    fake_kube.create(rollout("other", "ml"))
    fake_kube.create(rollout("second", "default"))
    assert sorted(o["metadata"]["name"] for o in store.list("default")) == ["inference", "second"]
    assert [o["metadata"]["name"] for o in store.list("ml")] == ["other"]
    everything = store.list()
    assert sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in everything) == [
        ("default", "inference"), ("default", "second"), ("ml", "other")]
    assert all(o["kind"] == "ModelRollout" for o in everything)
    assert store.list("empty") == []
    items, rv = store.list_with_version()
    assert len(items) == 3 and int(rv) >= max(int(o["metadata"]["resourceVersion"]) for o in items)
    assert any(r["path"] == "/apis/rollouts.analyzer.dev/v1alpha1/modelrollouts" for r in settled_requests(fake_kube))


def test_list_follows_continue_pages(fake_kube, store, monkeypatch):
    import analyzer.kube.rollouts as mod

    monkeypatch.setattr(mod, "LIST_PAGE", 2)
    for i in range(4):
        fake_kube.create(rollout(f"r{i}"))
    assert len(store.list("default")) == 5
    assert sum(1 for r in settled_requests(fake_kube) if "continue=" in r["query"]) == 2


def test_watch_sees_an_update_from_the_list_version(fake_kube, store):
    _, rv = store.list_with_version("default")
    store.patch_spec("default", "inference", {"paused": True})
    events = store.watch("default", rv, timeout_seconds=5)
    kind, obj = next(e for e in events if e[0] != "BOOKMARK")
    events.close()
    assert kind == "MODIFIED" and obj["spec"]["paused"] is True and obj["metadata"]["generation"] == 2


def test_watch_all_namespaces_while_changes_happen(fake_kube, store):
    fake_kube.create_namespace("ml")
    _, rv = store.list_with_version()

    def later():
        time.sleep(0.3)
        fake_kube.create(rollout("late", "ml"))

    threading.Thread(target=later, daemon=True).start()
    got = []
    for kind, obj in store.watch(None, rv, timeout_seconds=5):
        if kind != "BOOKMARK":
            got.append((kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))
            break
    assert got == [("ADDED", "ml", "late")]


@pytest.mark.parametrize("fake_kube", [{"bookmark_interval": 0.2}], indirect=True)
def test_watch_yields_bookmarks_and_ends_at_its_timeout(fake_kube, store):
    _, rv = store.list_with_version("default")
    started = time.monotonic()
    events = list(store.watch("default", rv, timeout_seconds=1))
    assert time.monotonic() - started < 4
    bookmarks = [obj for kind, obj in events if kind == "BOOKMARK"]
    assert bookmarks and all(int(b["metadata"]["resourceVersion"]) >= int(rv) for b in bookmarks)
    deadline = time.monotonic() + 3  # the server logs a request when its stream has ended
    while not (watches := [r for r in settled_requests(fake_kube) if "watch=" in r["query"]]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(watches) == 1  # one request: the helper never reconnects on its own
    assert "allowWatchBookmarks=true" in watches[0]["query"] and "timeoutSeconds=1" in watches[0]["query"]
    assert f"resourceVersion={rv}" in watches[0]["query"]


def test_watch_from_an_expired_version_raises_watch_expired(fake_kube, store):
    _, rv = store.list_with_version("default")
    store.patch_spec("default", "inference", {"paused": True})
    fake_kube.expire_history()
    with pytest.raises(WatchExpired, match="410") as err:
        for _ in store.watch("default", rv, timeout_seconds=5):
            pass
    assert isinstance(err.value, KubeError)
    # what the daemon does next: list again, watch from there
    items, fresh = store.list_with_version("default")
    store.patch_spec("default", "inference", {"paused": False})
    kind, obj = next(e for e in store.watch("default", fresh, timeout_seconds=5) if e[0] != "BOOKMARK")
    assert kind == "MODIFIED" and obj["spec"]["paused"] is False
