"""Reading YAML files into documents, with errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from analyzer.argo.errors import FieldError, TemplateError


def load_documents(path: str | Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a file; raises TemplateError for unreadable or bad YAML."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(source, [FieldError("", f"cannot read file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise TemplateError(source, [FieldError("", "file is not UTF-8 text")]) from None
    return parse_documents(text, source)


def parse_documents(text: str, source: str = "<input>") -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateError(source, [FieldError("", f"invalid YAML: {where}{problem}")]) from None
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise TemplateError(source, [FieldError(f"document[{i}]" if len(docs) > 1 else "",
                                                    f"expected a mapping (an Argo object), got {type(d).__name__}")])
    if not docs:
        raise TemplateError(source, [FieldError("", "file contains no YAML document")])
    return docs
