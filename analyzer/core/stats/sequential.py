"""The sequential judge's evidence: one e-process per metric, averaged into one per rollout.

The rollout's false-rollback budget alpha is shared by averaging: with weights w_m (summing to
1), ``E = sum_m w_m E_m`` is an e-process when every ``E_m`` is one, so "roll back when
E >= 1/alpha" keeps P(false rollback) <= alpha for the rollout as a whole, under any dependence
between metrics. Fixed-horizon ``series`` metrics take their share of alpha out of the
sequential budget.

A metric that cannot bet yet (in its warm-up, or without data) holds no share: until it starts,
the budget is split among the metrics that can. When it starts, the wealth accumulated so far is
re-split among the metrics now active in proportion to ``w_m * (own e-value since its start)``
(1 for the newcomer), each continuing from there: ``E_t = E_s * sum_m pi_m E_m,t / E_m,s`` after
a start at s. The split depends on data before s only and each piece is a supermartingale from
its start, so the whole is one too -- the same guarantee; errors are judged on the full alpha
while latency is still warming up, and afterwards the budget stays with the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analyzer.core.stats.errors import error_log_e
from analyzer.core.stats.evalue import log_mixture
from analyzer.core.stats.latency import latency_log_e
from analyzer.core.stats.model import JudgeSpec, MetricSpec, MetricType
from analyzer.core.stats.steps import Array, Steps

SEQUENTIAL_TYPES = (MetricType.ERROR_RATE, MetricType.LATENCY)


def has_data(steps: Steps, metric: MetricSpec) -> bool:
    steps = steps.view(metric.name)
    if metric.type is MetricType.LATENCY:
        return steps.bounds is not None and steps.canary.buckets is not None and steps.baseline.buckets is not None
    if metric.type is MetricType.SERIES:
        return metric.name in steps.values
    return True


def metric_log_e(steps: Steps, metric: MetricSpec) -> Array:
    """log e-process path ``[T]`` of one sequential metric (zeros when it has no data)."""
    steps = steps.view(metric.name)
    c, b = steps.canary, steps.baseline
    if metric.type is MetricType.ERROR_RATE:
        return error_log_e(c.errors, b.errors, c.requests, b.requests, steps.t,
                           tolerance=metric.tolerance, warmup=metric.warmup)
    if metric.type is MetricType.LATENCY and has_data(steps, metric):
        assert c.buckets is not None and b.buckets is not None and steps.bounds is not None
        return latency_log_e(c.buckets, b.buckets, steps.t, steps.bounds,
                             tolerance=metric.tolerance, warmup=metric.warmup)
    return np.zeros_like(steps.t)


@dataclass(frozen=True)
class SequentialPaths:
    log_e: dict[str, Array]  # per sequential metric
    weights: dict[str, float]  # within the sequential group, summing to 1
    combined: Array  # log of the weighted average
    alpha: float  # the sequential group's share of the rollout's alpha

    @property
    def log_threshold(self) -> float:
        return float(np.log(1.0 / self.alpha))

    def metric_threshold(self, name: str) -> float:
        """The e-value this metric alone would need to trigger a rollback."""
        return 1.0 / (self.alpha * self.weights[name])


def start_index(steps: Steps, metric: MetricSpec) -> int:
    """First step the metric bets on (after its warm-up, with data); len(t) if never."""
    if not has_data(steps, metric):
        return len(steps.t)
    ready = np.flatnonzero(steps.view(metric.name).start >= metric.warmup)
    return int(ready[0]) if len(ready) else len(steps.t)


def combine(paths: list[Array], weights: list[float], starts: list[int]) -> Array:
    """Weighted average of log e-process paths ``[..., T]``, re-split whenever a metric starts.

    At each start the rollout's wealth is re-split among the metrics now active in proportion to
    ``weight x (the metric's own e-value since its start)``, new metrics counting 1: the budget
    stays with the evidence already gathered. Between starts each piece is held (an average of
    supermartingales); the split depends only on the past, so the whole is a test supermartingale.
    """
    n = paths[0].shape[-1]
    out = np.zeros_like(paths[0])
    level = np.zeros(paths[0].shape[:-1])  # log wealth carried into the current segment
    cuts = sorted({0, *[s for s in starts if s < n]}) + [n]

    def at(i: int, index: int) -> Array:
        return paths[i][..., index] if index >= 0 else np.zeros(paths[i].shape[:-1])

    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        active = [i for i, s in enumerate(starts) if s <= a] or list(range(len(paths)))
        base = [at(i, a - 1) for i in active]
        own = np.stack([base[k] - at(i, min(starts[i], a) - 1) for k, i in enumerate(active)])
        log_w = np.log(np.asarray([weights[i] for i in active])).reshape((-1,) + (1,) * own[0].ndim) + own
        log_w = log_w - log_mixture(log_w, np.zeros(len(active)))[None]
        stacked = np.stack([paths[i][..., a:b] - base[k][..., None] for k, i in enumerate(active)])
        out[..., a:b] = level[..., None] + _log_mixture_varying(stacked, log_w)
        level = out[..., b - 1]
    return out


def _log_mixture_varying(log_components: Array, log_weights: Array) -> Array:
    """log of sum_m exp(log_weights[m]) * exp(log_components[m]); weights ``[M, ...]`` per run."""
    return np.asarray(np.logaddexp.reduce(log_components + log_weights[..., None], axis=0), dtype=np.float64)


def sequential_paths(steps: Steps, spec: JudgeSpec) -> SequentialPaths | None:
    shares = spec.weights()
    seq = [m for m in spec.metrics if m.type in SEQUENTIAL_TYPES]
    if not seq:
        return None
    group = sum(shares[m.name] for m in seq)
    weights = {m.name: shares[m.name] / group for m in seq}
    paths = {m.name: metric_log_e(steps, m) for m in seq}
    combined = combine([paths[m.name] for m in seq], [weights[m.name] for m in seq],
                       [start_index(steps, m) for m in seq])
    return SequentialPaths(paths, weights, combined, spec.alpha * group)
