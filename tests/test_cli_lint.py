"""`analyzer lint`: every kind of broken template gives `file: field.path: reason`, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import REPO, run_cli

GOOD = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args:
    - name: threshold
      value: "0.99"
  metrics:
    - name: success-rate
      interval: 1m
      count: 3
      successCondition: result[0] >= {{args.threshold}}
      provider:
        prometheus:
          address: http://prometheus:9090
          query: sum(rate(x[5m]))
"""

# (id, text replacing part of GOOD or a whole file, expected field path, expected words in the reason)
BROKEN = [
    ("bad-yaml", "apiVersion: argoproj.io/v1alpha1\nkind: [AnalysisTemplate\n", "", "invalid YAML: line"),
    ("unknown-field", GOOD.replace("successCondition", "successCondtion"),
     "spec.metrics[0].successCondtion", "unknown field (did you mean 'successCondition'?)"),
    ("bad-duration", GOOD.replace("interval: 1m", "interval: 1d"),
     "spec.metrics[0].interval", 'unknown unit "d"'),
    ("duration-number", GOOD.replace("interval: 1m", "interval: 60"),
     "spec.metrics[0].interval", "must be a duration string"),
    ("bad-expression", GOOD.replace("result[0] >= {{args.threshold}}", "result[0] >="),
     "spec.metrics[0].successCondition", "invalid expression at column 13: unexpected token EOF"),
    ("missing-arg", GOOD.replace("{{args.threshold}}", "{{args.thresh}}"),
     "spec.metrics[0]", "refers to argument 'thresh', which spec.args does not declare"),
    ("unclosed-placeholder", GOOD.replace("{{args.threshold}}", "{{args.threshold"),
     "spec.metrics[0]", "unclosed '{{'"),
    ("no-provider", GOOD.split("      provider:")[0], "spec.metrics[0].provider", "required field is missing"),
    ("two-providers", GOOD + "        web:\n          url: http://x\n",
     "spec.metrics[0].provider", "multiple providers specified: prometheus, web"),
    ("wrong-api-version", GOOD.replace("argoproj.io/v1alpha1", "argoproj.io/v1"), "apiVersion",
     "must be argoproj.io/v1alpha1"),
    ("wrong-kind", GOOD.replace("kind: AnalysisTemplate", "kind: Rollout"), "kind", "must be one of"),
    ("count-below-limit", GOOD.replace("count: 3", "count: 1\n      failureLimit: 2"),
     "spec.metrics[0]", "count (1) must be >= failureLimit + consecutiveSuccessLimit (2 + 0)"),
    ("count-without-interval", GOOD.replace("      interval: 1m\n", ""),
     "spec.metrics[0]", "interval must be specified when count > 1"),
    ("limit-not-int", GOOD.replace("count: 3", "count: 3\n      failureLimit: two"),
     "spec.metrics[0].failureLimit", "must be an integer"),
    ("dryrun-star", GOOD + "  dryRun:\n    - metricName: '*'\n",
     "spec.dryRun[0].metricName", "use '.*' to match every metric"),
    ("dryrun-no-match", GOOD + "  dryRun:\n    - metricName: latency\n",
     "spec.dryRun[0].metricName", "matches no metric name"),
    ("duplicate-metric", GOOD + GOOD.split("  metrics:\n")[1], "spec.metrics", "duplicate metric name 'success-rate'"),
    ("no-metrics", GOOD.split("  metrics:")[0], "spec.metrics", "required field is missing"),
    ("not-a-mapping", "- just\n- a list\n", "", "expected a mapping"),
    ("empty-file", "", "", "file contains no YAML document"),
]


@pytest.mark.parametrize(("name", "text", "path", "reason"), BROKEN, ids=[b[0] for b in BROKEN])
def test_lint_reports_file_field_and_reason(tmp_path: Path, name: str, text: str, path: str, reason: str) -> None:
    f = tmp_path / f"{name}.yaml"
    f.write_text(text)
    r = run_cli("lint", str(f))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    prefix = f"{f}: {path}: " if path else f"{f}: "
    lines = [line for line in r.stderr.splitlines() if line.startswith(prefix) and reason in line]
    assert lines, f"expected a line starting {prefix!r} with {reason!r}; got:\n{r.stderr}"


def test_lint_good_template_and_shipped_templates_pass(tmp_path: Path) -> None:
    f = tmp_path / "good.yaml"
    f.write_text(GOOD)
    r = run_cli("lint", str(f), *sorted(str(p) for p in (REPO / "templates").glob("*.yaml")))
    assert r.returncode == 0, r.stderr
    assert f"{f}: ok" in r.stdout


def test_lint_reads_every_file_and_keeps_going(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("interval: 1m", "interval: soon"))
    r = run_cli("lint", str(bad), str(good))
    assert r.returncode == 2
    assert f"{good}: ok" in r.stdout
    assert f"{bad}: spec.metrics[0].interval:" in r.stderr


def test_lint_missing_file_is_bad_input(tmp_path: Path) -> None:
    r = run_cli("lint", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
    assert "nope.yaml" in r.stderr and "Traceback" not in r.stderr


# A copy of ../shared/argo-examples (51 real templates from Argo Rollouts, Apache-2.0).
ARGO_EXAMPLES = sorted((REPO / "tests" / "data" / "argo-examples").glob("*.yaml"))


def test_all_real_argo_examples_lint() -> None:
    r = run_cli("lint", "--quiet", *map(str, ARGO_EXAMPLES))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": ok") == len(ARGO_EXAMPLES) == 51


def test_unsupported_providers_are_warnings_not_errors() -> None:
    job = next(p for p in ARGO_EXAMPLES if "job" in p.read_text())
    r = run_cli("lint", str(job))
    assert r.returncode == 0
    assert "provider 'job' is not supported" in r.stderr
