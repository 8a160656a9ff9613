"""``spec.templates[]``: compose a template from others, with Argo's merge rules
(utils/analysis/helpers.go, argo-semantics.md §3.1): metrics concatenated (own first, then each
reference in order, recursively), duplicate metric names rejected, an argument's non-empty
values must agree, a valued argument is never replaced by an empty one, duplicate dryRun /
measurementRetention rules rejected."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from analyzer.argo.errors import FieldError, TemplateError
from analyzer.argo.templates import Template
from analyzer.core.args import Arg

Lookup = Callable[[str, bool], Template | None]


def compose(root: Template, lookup: Lookup, source: str = "") -> Template:
    """Flatten ``root`` and everything it references into one template (refs cleared)."""
    if not root.template_refs:
        return root
    metrics, args, dry_run, retention = _flatten(root, lookup, source, (root.name,))
    names: set[str] = set()
    for m in metrics:
        name = str(m.get("name", ""))
        if name in names:
            raise TemplateError(source, [FieldError("spec.templates", f"two metrics have the same name '{name}'")])
        names.add(name)
    for rules, label in ((dry_run, "Dry-Run"), ([p for p, _ in retention], "Measurement Retention")):
        if len(set(rules)) != len(rules):
            dup = next(r for r in rules if rules.count(r) > 1)
            raise TemplateError(source, [FieldError("spec.templates",
                                                    f"two {label} metric rules have the same name '{dup}'")])
    spec = replace(root.spec, metrics=tuple(metrics), args=tuple(args), dry_run=tuple(dry_run),
                   retention=tuple(retention))
    return replace(root, spec=spec, template_refs=[])


def _flatten(t: Template, lookup: Lookup, source: str, chain: tuple[str, ...]) -> tuple[
        list[Mapping[str, Any]], list[Arg], list[str], list[tuple[str, int]]]:
    metrics = list(t.spec.metrics)
    args: list[Arg] = []
    _merge_args(args, list(t.spec.args), source)
    dry_run = list(t.spec.dry_run)
    retention = list(t.spec.retention)
    for i, (name, cluster) in enumerate(t.template_refs):
        path = f"spec.templates[{i}].templateName"
        if name in chain:
            raise TemplateError(source, [FieldError(path, "templates reference each other in a cycle: "
                                                    + " -> ".join((*chain, name)))])
        ref = lookup(name, cluster)
        if ref is None:
            kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
            raise TemplateError(source, [FieldError(path, f"{kind} '{name}' not found (pass its file too, "
                                                    "or keep it in the same directory)")])
        m, a, d, r = _flatten(ref, lookup, source, (*chain, name))
        metrics += m
        _merge_args(args, a, source)
        dry_run += d
        retention += r
    return metrics, args, dry_run, retention


def _merge_args(into: list[Arg], new: list[Arg], source: str) -> None:
    for a in new:
        existing = next((i for i, x in enumerate(into) if x.name == a.name), None)
        if existing is None:
            into.append(a)
            continue
        old = into[existing]
        if old.value and a.value and old.value != a.value:
            raise TemplateError(source, [FieldError("spec.args", f"Argument `{a.name}` specified multiple times "
                                                    f"with different values: '{old.value}', '{a.value}'")])
        if not old.has_source and a.has_source:
            into[existing] = a
