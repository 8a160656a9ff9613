"""pytest fixtures. In tests/conftest.py:

    from fakekube.fixtures import fake_kube, fake_kube_process, kube_api_client  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .fake import FakeKube, FakeKubeProcess


@pytest.fixture
def fake_kube(request: pytest.FixtureRequest) -> Iterator[FakeKube]:
    """A started in-process ``FakeKube`` with the CRDs of ``tests/fakekube/crds``.

    Options via ``@pytest.mark.parametrize("fake_kube", [{...}], indirect=True)``: any keyword
    argument of ``FakeKube`` (e.g. ``{"history_limit": 5, "bookmark_interval": 0.2}``)."""
    kwargs: dict[str, Any] = getattr(request, "param", None) or {}
    kube = FakeKube(**kwargs).start()
    try:
        yield kube
    finally:
        kube.stop()


@pytest.fixture
def kube_api_client(fake_kube: FakeKube) -> Any:
    """A ``kubernetes.client.ApiClient`` for ``fake_kube`` (loaded from its kubeconfig)."""
    return fake_kube.api_client()


@pytest.fixture
def fake_kube_process(request: pytest.FixtureRequest) -> Iterator[FakeKubeProcess]:
    """``python -m fakekube`` in a child process, for tests that kill the code under test."""
    kwargs: dict[str, Any] = getattr(request, "param", None) or {}
    proc = FakeKubeProcess(**kwargs).start()
    try:
        yield proc
    finally:
        proc.close()
