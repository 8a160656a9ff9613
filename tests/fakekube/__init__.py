"""fakekube: a faithful in-process fake of the Kubernetes API server for tests.

See README.md in this directory for what it reproduces and what it does not.
"""

from .errors import ApiError
from .fake import DEFAULT_CRDS_DIR, DEFAULT_TOKEN, FakeKube, FakeKubeProcess, istio_webhook, kubeconfig_text

__all__ = ["DEFAULT_CRDS_DIR", "DEFAULT_TOKEN", "ApiError", "FakeKube", "FakeKubeProcess", "istio_webhook", "kubeconfig_text"]
