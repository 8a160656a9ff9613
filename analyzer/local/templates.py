"""AnalysisTemplates from YAML files: a :class:`~analyzer.ports.TemplateSource` without Kubernetes.

Files are read again on every lookup, so an edited template is used by the next analysis run
without a restart. Namespaces: a template that names one is found only in that namespace; one
that names none is found in any (local setups rarely have namespaces). Two templates of the same
kind and name that could both match are an error naming both files, never a silent pick.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from analyzer.argo.errors import FieldError, TemplateError
from analyzer.argo.loader import load_documents

KINDS = {False: "AnalysisTemplate", True: "ClusterAnalysisTemplate"}


class LocalTemplates:
    """Implements :class:`~analyzer.ports.TemplateSource` over files and directories
    (``*.yaml`` / ``*.yml`` directly in a directory; other kinds of documents are skipped)."""

    def __init__(self, paths: str | Path | Iterable[str | Path]) -> None:
        items = [paths] if isinstance(paths, str | Path) else list(paths)
        self.paths = [Path(p) for p in items]
        for p in self.paths:
            if not p.exists():
                raise TemplateError(str(p), [FieldError("", "no such file or directory")])

    def files(self) -> list[Path]:
        out: list[Path] = []
        for p in self.paths:
            if p.is_dir():
                out += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
            else:
                out.append(p)
        return out

    def documents(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every AnalysisTemplate / ClusterAnalysisTemplate with the file it came from; raises
        TemplateError (file, field, reason) for an unreadable file or bad YAML."""
        found: list[tuple[Path, dict[str, Any]]] = []
        for f in self.files():
            for doc in load_documents(f):
                if doc.get("kind") in KINDS.values():
                    found.append((f, doc))
        return found

    def get(self, namespace: str, name: str, cluster_scope: bool = False) -> dict[str, Any] | None:
        kind = KINDS[cluster_scope]
        matches: list[tuple[Path, dict[str, Any]]] = []
        for f, doc in self.documents():
            raw = doc.get("metadata")
            meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if doc.get("kind") != kind or meta.get("name") != name:
                continue
            ns = meta.get("namespace")
            if not cluster_scope and ns and ns != namespace:
                continue
            matches.append((f, doc))
        if len(matches) > 1:
            where = ", ".join(str(f) for f, _ in matches)
            raise TemplateError(str(matches[1][0]), [FieldError("metadata.name", f"{kind} {name!r} is defined more "
                                                                                 f"than once ({where})")])
        return matches[0][1] if matches else None
