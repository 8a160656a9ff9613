"""rollout-analyzer."""
