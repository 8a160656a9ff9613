"""The Kubernetes adapter: the only package that imports the ``kubernetes`` client.

Each module implements one port of :mod:`analyzer.ports` over the official client (sync API, one
``ApiClient`` passed in, a client-side timeout on every request):

* ``client``    ApiClient from a kubeconfig (file/context, kubectl's rules) or the pod's service account
* ``objects``   :class:`~analyzer.ports.CustomObjects` for the Istio and KServe routers
* ``rollouts``  :class:`~analyzer.ports.RolloutStore` for ModelRollouts, plus a watch helper
* ``templates`` :class:`~analyzer.ports.TemplateSource` (Argo (Cluster)AnalysisTemplates)
* ``capacity``  :class:`~analyzer.ports.CapacitySource` (Deployments, HPA, KEDA ScaledObjects, /scale)
* ``events``    :class:`~analyzer.ports.EventSink` (core/v1 Events on the ModelRollout)
* ``lease``     leader election (Leases in the controller's own namespace)

This module imports nothing heavy: the CLI may read :data:`API_ACCESS` (and :data:`SERVE_ACCESS`)
without loading the client.
"""

from __future__ import annotations

# Every (API group, resource, verb) the code in this package sends, and nothing else. deploy/rbac.yaml
# grants exactly this set (tests/test_kube_manifests.py compares both ways, and checks the requests
# the adapters really make against it), so a new API call needs a line here and a rule there.
API_ACCESS: frozenset[tuple[str, str, str]] = frozenset({
    # rollouts.py: the store (get, list for the daemon's relist, watch, spec merge patch, status PUT)
    ("rollouts.analyzer.dev", "modelrollouts", "get"),
    ("rollouts.analyzer.dev", "modelrollouts", "list"),
    ("rollouts.analyzer.dev", "modelrollouts", "watch"),
    ("rollouts.analyzer.dev", "modelrollouts", "patch"),
    ("rollouts.analyzer.dev", "modelrollouts/status", "update"),
    # objects.py, driven by routers/istio.py and routers/kserve.py: read and JSON-patch
    ("networking.istio.io", "virtualservices", "get"),
    ("networking.istio.io", "virtualservices", "patch"),
    ("serving.kserve.io", "inferenceservices", "get"),
    ("serving.kserve.io", "inferenceservices", "patch"),
    # templates.py
    ("argoproj.io", "analysistemplates", "get"),
    ("argoproj.io", "clusteranalysistemplates", "get"),
    # capacity.py: workloads, their autoscalers, the /scale subresource
    ("apps", "deployments", "get"),
    ("apps", "deployments/scale", "get"),
    ("apps", "deployments/scale", "patch"),
    ("autoscaling", "horizontalpodautoscalers", "list"),
    ("keda.sh", "scaledobjects", "list"),
    # events.py: create, and bump the count of a repeated event
    ("", "events", "create"),
    ("", "events", "patch"),
})

# Granted only in the controller's own namespace (a Role, not the ClusterRole): leader election.
LEASE_ACCESS: frozenset[tuple[str, str, str]] = frozenset({
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
})

# What `analyzer serve` sends, for its Slack actions only (server/cli.py builds a KubeRolloutStore
# and KubeEvents for server/slack.py; the verdicts never call the API). deploy/serve.yaml grants
# exactly this set to its own ServiceAccount; tests/test_kube_serve_manifests.py compares both
# ways and drives every Slack verb through `analyzer serve` against the fake API server.
SERVE_ACCESS: frozenset[tuple[str, str, str]] = frozenset({
    # rollouts.py via controller/actions.py: /rollout status and every verb read the rollout
    # (update hash and step), then a merge patch of spec.requests / spec.paused
    ("rollouts.analyzer.dev", "modelrollouts", "get"),
    ("rollouts.analyzer.dev", "modelrollouts", "patch"),
    # events.py: the audit Event of each action; its message carries the action's unique token,
    # so it never repeats and is never patched
    ("", "events", "create"),
})
