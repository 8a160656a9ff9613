"""Connecting like kubectl: kubeconfig file and context, $KUBECONFIG lists, the namespace ``-n``
defaults to, clear errors when no cluster is configured, and a client-side timeout on every call."""

from __future__ import annotations

import time

import kubernetes
import pytest
import yaml

from analyzer.kube.client import KubeConfigError, api_client, default_namespace
from analyzer.kube.errors import KubeError
from analyzer.kube.objects import KubeObjects


@pytest.fixture
def no_ambient_config(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_kubeconfig_file_and_its_namespace(fake_kube, tmp_path, no_ambient_config):
    fake_kube.create_namespace("ml")
    path = fake_kube.write_kubeconfig(tmp_path / "kc", namespace="ml", context="lab")
    client = api_client(path)
    names = [n.metadata.name for n in kubernetes.client.CoreV1Api(client).list_namespace().items]
    assert "ml" in names
    assert default_namespace(path) == "ml"
    assert default_namespace(path, "lab") == "ml"


def test_kubeconfig_list_and_context_choice(fake_kube, tmp_path, monkeypatch, no_ambient_config):
    a = fake_kube.write_kubeconfig(tmp_path / "a", namespace="team-a", context="a")
    b = fake_kube.write_kubeconfig(tmp_path / "b", namespace="team-b", context="b")
    monkeypatch.setenv("KUBECONFIG", f"{a}:{tmp_path / 'missing'}:{b}")
    assert default_namespace() == "team-a"  # the first file's current-context wins, as in kubectl
    assert default_namespace(context="b") == "team-b"
    api_client(context="b").call_api  # noqa: B018 - loads without error
    with pytest.raises(KubeConfigError, match=r"no context 'c' \(contexts: a, b\)"):
        default_namespace(context="c")
    with pytest.raises(KubeConfigError, match=r"no context 'c' \(contexts: a, b\)"):
        api_client(context="c")


def test_context_without_namespace_defaults_to_default(fake_kube, tmp_path, no_ambient_config):
    path = fake_kube.write_kubeconfig(tmp_path / "kc", namespace="x")
    doc = yaml.safe_load(open(path))
    for c in doc["contexts"]:
        c["context"].pop("namespace", None)
    (tmp_path / "kc").write_text(yaml.safe_dump(doc))
    assert default_namespace(str(tmp_path / "kc")) == "default"


def test_home_kubeconfig_is_used_when_nothing_is_named(fake_kube, tmp_path, no_ambient_config):
    home = tmp_path / "home" / ".kube"
    home.mkdir(parents=True)
    fake_kube.write_kubeconfig(home / "config", namespace="from-home")
    assert default_namespace() == "from-home"
    assert KubeObjects(api_client()).get("networking.istio.io", "v1", "virtualservices", "default", "none") is None


def test_clear_errors_without_a_cluster(tmp_path, no_ambient_config):
    with pytest.raises(KubeConfigError, match=r"no Kubernetes cluster configured: pass --kubeconfig FILE .*KUBECONFIG.*service account"):
        api_client()
    with pytest.raises(KubeConfigError, match=f"kubeconfig {tmp_path}/nope: no such file"):
        api_client(str(tmp_path / "nope"))
    with pytest.raises(KubeConfigError, match="--context prod: no kubeconfig found"):
        api_client(context="prod")
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(KubeConfigError, match=f"kubeconfig {broken}: "):
        api_client(str(broken))
    assert default_namespace() == "default"


def test_in_cluster_namespace_from_the_pod(monkeypatch, no_ambient_config):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("POD_NAMESPACE", "rollout-analyzer")
    assert default_namespace() == "rollout-analyzer"
    # no service account token mounted here: the in-cluster loader's own complaint, plus how to fix it
    with pytest.raises(KubeConfigError, match="in-cluster configuration: .*pass --kubeconfig"):
        api_client()


def test_every_request_has_a_client_side_timeout(fake_kube, tmp_path, no_ambient_config):
    path = fake_kube.write_kubeconfig(tmp_path / "kc")
    client = api_client(path, timeout=(1.0, 0.3))
    client.configuration.retries = 0  # one attempt, so the test measures the timeout itself
    fake_kube.set_request_delay(2.0)
    started = time.monotonic()
    with pytest.raises(Exception, match="(?i)timed? ?out"):
        kubernetes.client.CoreV1Api(client).list_namespace()  # a call that passes no _request_timeout
    assert time.monotonic() - started < 1.5
    objects = KubeObjects(client, timeout=(1.0, 0.3))
    started = time.monotonic()
    with pytest.raises(KubeError, match="cannot reach the Kubernetes API server"):
        objects.get("networking.istio.io", "v1", "virtualservices", "default", "x")
    assert time.monotonic() - started < 1.5
