"""Shared pytest fixtures. Each area keeps its fixtures in its own module, imported here."""

from prom_fixtures import (  # noqa: F401 - re-exported as fixtures
    backfilled_prometheus,
    require_prometheus,
    scraped_workload,
    self_signed_cert,
    stub_http,
    warning_prometheus,
)
