"""Argo YAML <-> core model: AnalysisTemplate / ClusterAnalysisTemplate / AnalysisRun."""
