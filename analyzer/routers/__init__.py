"""Traffic routers: one module each (istio, kserve, haproxy), independent of each other."""
