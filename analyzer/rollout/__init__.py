"""Our rollout resource (ModelRollout) and Argo Rollouts: parsing, status JSON, `analyzer plan`."""
