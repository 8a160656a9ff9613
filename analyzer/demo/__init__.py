"""Local end-to-end demo parts: a fake inference workload and its Prometheus data."""
