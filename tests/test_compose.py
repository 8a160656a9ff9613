"""spec.templates[] composition with Argo's merge rules, through the CLI and the argo layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli

from analyzer.argo.compose import compose
from analyzer.argo.errors import TemplateError
from analyzer.argo.templates import parse_template


def tmpl(name: str, metrics: list[str], *, refs: list[str] = (), args: dict[str, str | None] | None = None,
         kind: str = "AnalysisTemplate", dry_run: list[str] = ()) -> dict:
    spec: dict = {"metrics": [{"name": m, "successCondition": "result[0] >= 1",
                               "provider": {"prometheus": {"query": "q"}}} for m in metrics]}
    if refs:
        spec["templates"] = [{"templateName": r} for r in refs]
    if args is not None:
        spec["args"] = [{"name": k} if v is None else {"name": k, "value": v} for k, v in args.items()]
    if dry_run:
        spec["dryRun"] = [{"metricName": p} for p in dry_run]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def lib(*docs: dict):
    parsed = {(d["metadata"]["name"], d["kind"] == "ClusterAnalysisTemplate"): parse_template(d) for d in docs}
    return lambda name, cluster: parsed.get((name, cluster))


def test_metrics_own_first_then_references_recursively() -> None:
    a, b = tmpl("a", ["a1"], refs=["b"]), tmpl("b", ["b1", "b2"])
    top = parse_template(tmpl("top", ["t1"], refs=["a"]))
    out = compose(top, lib(a, b))
    assert [m["name"] for m in out.spec.metrics] == ["t1", "a1", "b1", "b2"]
    assert out.template_refs == []


@pytest.mark.parametrize(("docs", "message"), [
    ([tmpl("b", ["t1"])], "two metrics have the same name 't1'"),
    ([tmpl("b", ["b1"], args={"x": "2"})], "Argument `x` specified multiple times with different values: '1', '2'"),
    ([tmpl("b", ["b1"], refs=["top"])], "cycle: top -> b -> top"),
    ([tmpl("b", ["b1"], dry_run=["1"])], "two Dry-Run metric rules have the same name '1'"),
    ([], "AnalysisTemplate 'b' not found"),
])
def test_merge_errors(docs: list[dict], message: str) -> None:
    top = parse_template(tmpl("top", ["t1"], refs=["b"], args={"x": "1"}, dry_run=["1"]))
    with pytest.raises(TemplateError) as exc:
        compose(top, lib(*docs, tmpl("top", ["t1"], refs=["b"], args={"x": "1"}, dry_run=["1"])))
    assert message in str(exc.value)


def test_valued_arg_is_never_replaced_by_an_empty_one() -> None:
    top = parse_template(tmpl("top", ["t1"], refs=["b"], args={"x": None}))
    out = compose(top, lib(tmpl("b", ["b1"], args={"x": "5"})))
    assert [(a.name, a.value) for a in out.spec.args] == [("x", "5")]


def test_cluster_scope_looks_up_cluster_templates_only() -> None:
    top = tmpl("top", ["t1"])
    top["spec"]["templates"] = [{"templateName": "c", "clusterScope": True}]
    with pytest.raises(TemplateError, match="ClusterAnalysisTemplate 'c' not found"):
        compose(parse_template(top), lib(tmpl("c", ["c1"])))
    out = compose(parse_template(top), lib(tmpl("c", ["c1"], kind="ClusterAnalysisTemplate")))
    assert [m["name"] for m in out.spec.metrics] == ["t1", "c1"]


def test_cli_simulate_finds_references_in_the_same_directory(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tmpl("base", ["b1"])))
    (tmp_path / "top.yaml").write_text(yaml.safe_dump(tmpl("top", ["t1"], refs=["base"])))
    (tmp_path / "r.json").write_text(json.dumps({"t1": [{"value": [1]}], "b1": [{"value": [0]}]}))
    r = run_cli("simulate", str(tmp_path / "top.yaml"), "--results", str(tmp_path / "r.json"), "--json")
    status = json.loads(r.stdout)
    assert (r.returncode, status["phase"]) == (1, "Failed")
    assert status["message"] == 'Metric "b1" assessed Failed due to failed (1) > failureLimit (0)'
