"""Shared pytest fixtures. Each area keeps its fixtures in its own module, imported here."""

from daemon_fixtures import health  # noqa: F401 - re-exported as a fixture
from fakekube.fixtures import fake_kube, fake_kube_process, kube_api_client  # noqa: E402, F401
from prom_fixtures import (  # noqa: F401 - re-exported as fixtures
    backfilled_prometheus,
    require_prometheus,
    scraped_workload,
    self_signed_cert,
    stub_http,
    warning_prometheus,
)
