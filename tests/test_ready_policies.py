"""The ready-made rollouts in policies/rollouts/ and the judge template for them: they parse,
the real CRD accepts them (fake API server), the plan is the seed's shape, and the judge
template gets every argument from the rollout."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import run_cli
from rollout_harness import MODELROLLOUT_CRD, SEED

from analyzer.controller.runs import build_run_spec
from analyzer.core import analysis
from analyzer.rollout.spec import parse_rollout

ROOT = Path(__file__).resolve().parent.parent
ROLLOUTS = sorted((ROOT / "policies" / "rollouts").glob("*.yaml"))


class FileTemplates:
    def get(self, namespace: str, name: str, cluster_scope: bool = False) -> dict[str, Any] | None:
        path = ROOT / "templates" / f"{name}.yaml"
        return yaml.safe_load(path.read_text()) if path.exists() else None


@pytest.mark.parametrize("path", ROLLOUTS, ids=lambda p: p.name)
def test_ready_rollouts_parse_and_the_crd_accepts_them(path: Path, fake_kube: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    spec, warnings = parse_rollout(doc, str(path))
    assert not warnings and spec.steps
    fake_kube.register_crd(MODELROLLOUT_CRD)
    fake_kube.create_namespace(doc["metadata"]["namespace"])
    created = fake_kube.create(doc)
    assert created["spec"] == doc["spec"]  # nothing pruned: every field is in the schema
    for step in spec.steps:  # every template a step names is shipped
        for t in step.analysis.templates if step.analysis else ():
            assert (ROOT / "templates" / f"{t.name}.yaml").exists(), t.name


def test_istio_canary_plan_is_the_seed_shape_on_the_seed_virtualservices() -> None:
    r = run_cli("plan", str(ROOT / "policies" / "rollouts" / "istio-canary.yaml"), "--virtualservice",
                str(SEED / "06-istio-traffic-split.yaml"), "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert [p["canary_weight"] for p in plan] == [5, 5, 25, 25, 50, 50, 100, 100]
    assert plan[-1]["step"] == "promoted"
    header_route = plan[0]["virtualservices"][0]["spec"]["http"][0]
    assert header_route["match"][0]["headers"]["x-model-version"] == {"exact": "v2"}


def test_judge_template_gets_every_argument_from_the_rollout() -> None:
    doc = yaml.safe_load((ROOT / "policies" / "rollouts" / "istio-canary.yaml").read_text())
    spec, _ = parse_rollout(doc)
    step = spec.steps[1]
    assert step.analysis is not None
    started = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    run_spec = build_run_spec(spec, step.analysis, FileTemplates(), "ml", doc, started)
    plan = analysis.plan(run_spec, analysis.RunStatus(), started)
    assert plan.error is None and len(plan.due) == 1
    judge = plan.due[0].provider
    assert judge["policy"] == "istio" and judge["start"] == "2026-05-01T12:00:00Z"
    assert judge["canary"] == {"destination_workload": "inference-v2", "destination_workload_namespace": "ml"}
    assert judge["baseline"] == {"destination_workload": "inference-v1", "destination_workload_namespace": "ml"}
