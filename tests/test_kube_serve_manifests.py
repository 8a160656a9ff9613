"""deploy/serve.yaml (`analyzer serve` in the cluster): its RBAC grants exactly the API calls the
Slack actions make (the table SERVE_ACCESS, and the requests really sent when every Slack verb is
driven through `analyzer serve` started the way the Deployment starts it, against the fake API
server); Slack is off, with no Kubernetes call at all, when the optional Secret is absent; the
Deployment and Service are accepted and agree with each other, with the CLI and with the
controller's; and templates/canary-judge.yaml points at this Service."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import yaml
from cli_helpers import analyzer_cmd
from test_kube_manifests import by_kind, docs, rules_of
from test_kube_support import REPO, observed_access, with_crd
from test_slack_endpoints import API, HASH, PAUSED_STATUS, SECRET, Harness, manifest
from test_slack_notify import SlackStandIn, free_dead_port

from analyzer.kube import API_ACCESS, SERVE_ACCESS
from analyzer.kube.rollouts import KubeRolloutStore
from analyzer.localprom import free_port
from analyzer.notify.messages import ABORT_ACTION, PROMOTE_ACTION, ButtonTarget
from analyzer.server.cli import serve

NAMESPACE = "rollout-analyzer"
WEB = "rollout-analyzer-web"
USER = "U0OPERATOR"
SLACK_SECRET = "rollout-analyzer-slack"
TOKEN_SECRET = "rollout-analyzer-token"
# What an operator would put in the optional Secret (docs/slack.md, deploy/README.md).
SLACK_KEYS = {"signing-secret": SECRET, "bot-token": "xoxb-test", "channel": "C0ROLLOUTS"}


def serve_docs() -> list[dict[str, Any]]:
    return docs("serve.yaml")


def the(kind: str) -> dict[str, Any]:
    (doc,) = by_kind(serve_docs(), kind)
    return doc


def container(dep: dict[str, Any]) -> dict[str, Any]:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def kubelet_env(c: dict[str, Any], secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: literal values, the downward API,
    and secretKeyRefs, where a missing optional Secret or key leaves the variable unset."""
    env: dict[str, str] = {}
    for e in c["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "fieldRef" in e["valueFrom"]:
            assert e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[e["name"]] = "rollout-analyzer-web-7d9f8b6c5-abcde"
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            if value is None:
                assert ref.get("optional") is True, f"{e['name']}: a missing Secret would stop the pod"
                continue
            env[e["name"]] = value
    return env


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion in args."""
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), a) for a in args]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def with_option(args: list[str], name: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(name) + 1] = value
    return out


@contextmanager
def serve_as_deployed(tmp_path: Path, fake_kube: Any, secrets: dict[str, dict[str, str]],
                      slack_policy: dict[str, Any] | None, slack_api: str = "") -> Iterator[str]:
    """`analyzer serve` with the Deployment's args and environment, on loopback. What differs from
    the pod: the port, the token and policy files (written here, at the mounted paths' file names),
    Prometheus (a dead port: the Slack actions do not need it) and the cluster (KUBECONFIG of the
    fake instead of the service account)."""
    c = container(the("Deployment"))
    env = kubelet_env(c, secrets)
    env["PROMETHEUS_URL"] = f"http://127.0.0.1:{free_dead_port()}"
    args = expand(c["args"], env)
    token = tmp_path / PurePosixPath(option(args, "--token-file")).name
    token.write_text(secrets[TOKEN_SECRET]["token"] + "\n")
    policy = tmp_path / PurePosixPath(env["SLACK_POLICY"]).name
    if slack_policy is not None:
        policy.write_text(yaml.safe_dump(slack_policy))
    env["SLACK_POLICY"] = str(policy)
    port = free_port()
    args = with_option(with_option(args, "--listen", f"127.0.0.1:{port}"), "--token-file", str(token))
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "KUBECONFIG"}
    full_env = {**base, **env, "KUBECONFIG": fake_kube.kubeconfig_path, "SLACK_API_BASE_URL": slack_api}
    log = tmp_path / f"serve-{port}.log"  # a file, not a pipe nobody drains
    with log.open("wb") as out:
        proc = subprocess.Popen([*analyzer_cmd(), *args], cwd=tmp_path, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            if proc.poll() is not None:
                raise AssertionError(f"serve exited {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"serve did not answer /healthz: {log.read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


TOKEN = {TOKEN_SECRET: {"token": "0123456789abcdef0123456789abcdef"}}


# --------------------------------------------------------------------------- RBAC


def test_serve_rbac_grants_exactly_the_table():
    items = serve_docs()
    assert [d["kind"] for d in items] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"]
    sa, role, binding = the("ServiceAccount"), the("ClusterRole"), the("ClusterRoleBinding")
    assert (sa["metadata"]["name"], sa["metadata"]["namespace"]) == (WEB, NAMESPACE)
    assert rules_of(role) == SERVE_ACCESS
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": WEB, "namespace": NAMESPACE}]
    assert the("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == WEB
    granted = {r for _, r, _ in SERVE_ACCESS}
    assert not granted & {"secrets", "pods", "pods/exec", "roles", "clusterroles", "rolebindings", "configmaps"}
    assert SERVE_ACCESS < API_ACCESS  # the same adapters as the controller, a strict subset of its calls
    # applying serve.yaml next to rbac.yaml replaces none of the controller's objects
    ours = {(d["kind"], d["metadata"]["name"]) for d in items}
    assert not ours & {(d["kind"], d["metadata"]["name"]) for d in docs("rbac.yaml") + docs("deployment.yaml") + docs("service.yaml")}
    for d in items:
        assert d["metadata"]["labels"] == {"app.kubernetes.io/name": "rollout-analyzer", "app.kubernetes.io/component": "web"}
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == NAMESPACE


def test_every_slack_action_through_serve_uses_exactly_what_rbac_grants(tmp_path, fake_kube):
    """Every verb (command and button) through `analyzer serve`, configured from the Secret keys
    the Deployment reads: each acts on the ModelRollout and is audited, and the requests the
    process sent are SERVE_ACCESS, no more and no less."""
    with_crd(fake_kube)
    fake_kube.create_namespace("ml")
    fake_kube.create(manifest())
    fake_kube.set_status(API, "ModelRollout", "inference", PAUSED_STATUS, namespace="ml")
    assert observed_access(fake_kube) == set()  # the set-up above is not in the request log
    policy = {"kind": "SlackPolicy", "rules": [{"users": [USER], "verbs": ["*"], "namespaces": ["ml"]}]}
    secrets = {**TOKEN, SLACK_SECRET: SLACK_KEYS}
    with SlackStandIn() as slack, serve_as_deployed(tmp_path, fake_kube, secrets, policy, slack.api_url) as url, \
            httpx.Client(timeout=10) as http:
        h = Harness(url, slack, KubeRolloutStore(fake_kube.api_client()), http)
        verbs = ["status", "pause", "resume", "promote", "promote --full", "abort", "retry"]
        for i, verb in enumerate(verbs):
            r = h.command(f"{verb} ml/inference", user=USER, hook=f"cmd{i}")
            assert r.status_code == 200 and "ml/inference" in r.json()["text"], r.text
            [outcome] = h.hook_bodies(f"cmd{i}", 1)
            expected = "ml/inference: Paused" if verb == "status" else f"requested *{verb.split()[0]}"
            assert expected in outcome["text"], outcome
        for j, action in enumerate((PROMOTE_ACTION, ABORT_ACTION)):
            r = h.click(ButtonTarget("ml", "inference", HASH, 1), action=action, user=USER, hook=f"btn{j}")
            assert r.status_code == 200
            [outcome] = h.hook_bodies(f"btn{j}", 1)
            assert outcome["replace_original"] is True and "requested" in outcome["text"]
        slack.wait_for("/api/chat.postMessage", 8)  # SLACK_BOT_TOKEN + SLACK_CHANNEL: the action log

    spec = fake_kube.get(API, "ModelRollout", "inference", namespace="ml")["spec"]
    assert set(spec["requests"]) == {"promote", "promoteFull", "abort", "retry"}
    audit = [e for e in fake_kube.list_objects("v1", "Event", namespace="ml") if e.get("reason") == "OperatorRequest"]
    assert len(audit) == 8 and all(USER in e["message"] for e in audit)
    assert {e["reportingInstance"] for e in audit} == {"rollout-analyzer-web-7d9f8b6c5-abcde"}  # POD_NAME

    used = observed_access(fake_kube)
    assert used - SERVE_ACCESS == set(), "requests outside deploy/serve.yaml's ClusterRole"
    assert SERVE_ACCESS - used == set(), "rules in deploy/serve.yaml that no Slack action uses"


def test_slack_is_off_without_the_optional_secret(tmp_path, fake_kube):
    """No `rollout-analyzer-slack` Secret (variables unset), or one with an empty signing secret
    (or only a newline, as `kubectl create secret --from-file` of an empty file gives): verdict
    service up, no Slack routes, and not one request to the API server."""
    for secrets in (TOKEN, {**TOKEN, SLACK_SECRET: {"signing-secret": ""}}, {**TOKEN, SLACK_SECRET: {"signing-secret": "\n"}}):
        with serve_as_deployed(tmp_path, fake_kube, secrets, slack_policy=None) as url:
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            r = httpx.post(f"{url}/slack/commands", content=b"text=status+ml%2Finference", timeout=5,
                           headers={"content-type": "application/x-www-form-urlencoded"})
            assert r.status_code == 404
    assert fake_kube.requests == []


def test_slack_on_without_a_policy_fails_closed(tmp_path, fake_kube):
    """The Secret but no policy ConfigMap: the server refuses to start and says why."""
    c = container(the("Deployment"))
    env = kubelet_env(c, {**TOKEN, SLACK_SECRET: SLACK_KEYS})
    args = expand(c["args"], {**env, "PROMETHEUS_URL": "http://127.0.0.1:9"})
    token = tmp_path / "token"
    token.write_text(TOKEN[TOKEN_SECRET]["token"])
    args = with_option(with_option(args, "--listen", f"127.0.0.1:{free_port()}"), "--token-file", str(token))
    missing = tmp_path / "slack" / "policy.yaml"  # the ConfigMap's mount, empty
    run_env = {**os.environ, **env, "SLACK_POLICY": str(missing), "KUBECONFIG": fake_kube.kubeconfig_path}
    done = subprocess.run([*analyzer_cmd(), *args], env=run_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"serve: Slack: {missing}: cannot read" in done.stderr and "Traceback" not in done.stderr
    assert fake_kube.requests == []


# --------------------------------------------------------------------------- Deployment and Service


def test_serve_deployment_and_service_are_accepted_and_agree(fake_kube):
    fake_kube.create_namespace(NAMESPACE)
    created = fake_kube.create(the("Deployment"))
    assert created["spec"]["replicas"] == 1
    pod = created["spec"]["template"]["spec"]
    c = container(created)
    assert c["image"] == "rollout-analyzer:0.1.0"

    # the args are options `analyzer serve` really has, and parse
    assert c["args"][0] == "serve"
    env = {e["name"]: e for e in c["env"]}
    assert env["PROMETHEUS_URL"]["value"].startswith("http://") and "$(PROMETHEUS_URL)" in c["args"]
    args = expand(c["args"][1:], {k: e["value"] for k, e in env.items() if "value" in e})
    options = {o for p in serve.params for o in p.opts + p.secondary_opts}
    assert {a for a in args if a.startswith("--")} <= options
    params = serve.make_context("serve", list(args)).params
    assert params["listen"] == "0.0.0.0:8080" and params["prometheus_url"] == env["PROMETHEUS_URL"]["value"]
    assert not params["no_auth"] and params["store_dir"] is None  # authenticated; Slack acts on the cluster
    assert "--policies" not in args and "ENV ANALYZER_POLICIES=/app/policies" in (REPO / "Dockerfile").read_text()

    # the token: the Secret's key `token`, mounted read-only where --token-file reads it
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    token_file = PurePosixPath(params["token_file"].as_posix())
    (token_volume,) = [v for v in volumes.values() if v.get("secret", {}).get("secretName") == TOKEN_SECRET]
    assert token_volume["secret"]["items"] == [{"key": "token", "path": token_file.name}]
    assert not token_volume["secret"].get("optional")
    assert mounts[token_volume["name"]]["mountPath"] == str(token_file.parent)
    assert mounts[token_volume["name"]]["readOnly"] is True

    # Slack: every variable from the optional Secret; the policy from an optional ConfigMap, mounted
    slack_refs = {k: e["valueFrom"]["secretKeyRef"] for k, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})}
    assert set(slack_refs) == {"SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "SLACK_CHANNEL"}
    assert all(r["name"] == SLACK_SECRET and r["optional"] is True for r in slack_refs.values())
    assert {r["key"] for r in slack_refs.values()} == set(SLACK_KEYS)
    policy_path = PurePosixPath(env["SLACK_POLICY"]["value"])
    (policy_volume,) = [v for v in volumes.values() if "configMap" in v]
    assert policy_volume["configMap"]["optional"] is True
    assert mounts[policy_volume["name"]]["mountPath"] == str(policy_path.parent)
    assert not str(policy_path).startswith("/app/")  # not the image's example policy

    # probes, hardening and resources as for the controller
    assert {p["containerPort"] for p in c["ports"] if p["name"] == "http"} == {8080}
    # both on /healthz: /readyz follows Prometheus, and the only pod must stay in the Service (serve.yaml)
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        assert (probe["httpGet"]["path"], probe["httpGet"]["port"]) == ("/healthz", "http")
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001 and psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]

    created_svc = fake_kube.create(the("Service"))
    assert created_svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert created["spec"]["selector"]["matchLabels"] == created_svc["spec"]["selector"]
    assert created["spec"]["template"]["metadata"]["labels"] == created_svc["spec"]["selector"]


def test_the_web_and_controller_services_select_only_their_own_pods(fake_kube):
    """One pod per Deployment template in the fake; each Service's selector, run by the API
    server's own label-selector code, finds exactly its own."""
    fake_kube.create_namespace(NAMESPACE)
    (controller,) = docs("deployment.yaml")
    (controller_svc,) = docs("service.yaml")
    for dep in (controller, the("Deployment")):
        tpl = dep["spec"]["template"]
        fake_kube.create({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": f"{dep['metadata']['name']}-pod", "namespace": NAMESPACE,
                                       "labels": tpl["metadata"]["labels"]},
                          "spec": tpl["spec"]})
        sel = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
        assert [p["metadata"]["name"] for p in fake_kube.list_objects("v1", "Pod", NAMESPACE, label_selector=sel)] == \
            [f"{dep['metadata']['name']}-pod"]
    for svc, owner in ((the("Service"), WEB), (controller_svc, "rollout-analyzer")):
        sel = ",".join(f"{k}={v}" for k, v in svc["spec"]["selector"].items())
        pods = fake_kube.list_objects("v1", "Pod", NAMESPACE, label_selector=sel)
        assert [p["metadata"]["name"] for p in pods] == [f"{owner}-pod"], svc["metadata"]["name"]


def test_canary_judge_points_at_the_serve_service():
    svc = the("Service")
    (port,) = svc["spec"]["ports"]
    template = yaml.safe_load((REPO / "templates" / "canary-judge.yaml").read_text())
    args = {a["name"]: a for a in template["spec"]["args"]}
    assert args["service-url"]["value"] == f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc:{port['port']}"
    # and the token it sends is the Secret serve reads (in the Rollout's namespace)
    assert args["token"]["valueFrom"]["secretKeyRef"] == {"name": TOKEN_SECRET, "key": "token"}
