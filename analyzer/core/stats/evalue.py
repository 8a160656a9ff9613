"""Small helpers shared by the e-processes: log-mixtures, crossings, the arm share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.special import logsumexp

from analyzer.core.stats.steps import Array


def log_mixture(log_components: Array, log_weights: Array | None = None) -> Array:
    """log of a weighted average of e-processes over axis 0 (uniform weights by default).

    An average of e-processes is an e-process (Ville's inequality holds for it), whatever the
    dependence between them: this is how several bets, and several metrics, share one alpha.
    """
    if log_weights is None:
        log_weights = np.full(log_components.shape[0], -np.log(log_components.shape[0]))
    shape = (-1,) + (1,) * (log_components.ndim - 1)
    return np.asarray(logsumexp(log_components + log_weights.reshape(shape), axis=0), dtype=np.float64)


def first_crossing(log_e: Array, log_threshold: float) -> Array:
    """Index of the first step where ``log_e >= log_threshold`` along the last axis; -1 if none."""
    hit = log_e >= log_threshold
    first = np.argmax(hit, axis=-1)
    return np.where(hit.any(axis=-1), first, -1)


def arm_share(canary: Array, baseline: Array) -> tuple[Array, npt.NDArray[np.bool_]]:
    """Per-step canary share of the traffic and whether both arms had traffic in that step.

    The share is taken from the requests each arm actually received in that step, so a traffic
    shift (5% -> 25% -> 50%) changes the null hypothesis step by step instead of biasing it.
    Steps where an arm saw nothing carry no information on the comparison (share 0 or 1).
    """
    total = canary + baseline
    valid = (canary > 0) & (baseline > 0)
    share = np.where(valid, canary / np.where(total > 0, total, 1.0), 0.5)
    return share, valid


def log_sigmoid(x: Array) -> Array:
    """log(1 / (1 + exp(-x))) without overflow."""
    return np.asarray(-np.logaddexp(0.0, -x), dtype=np.float64)


def lagged(a: Array) -> Array:
    """``a`` shifted one place right along the last axis, 0 first: at j, what was known before j."""
    return np.asarray(np.concatenate([np.zeros_like(a[..., :1]), a[..., :-1]], axis=-1), dtype=np.float64)


def time_blocks(t: Array, block: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Block index of every step and the first step of every block, for blocks of ``block``
    seconds of step end times ``t`` (a step ending on a boundary belongs to the block it ends)."""
    ids = np.maximum(np.ceil(t / block - 1e-9) - 1, 0).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return np.searchsorted(starts, np.arange(len(t)), side="right") - 1, starts


def block_running_total(a: Array, step_block: npt.NDArray[np.int64], starts: npt.NDArray[np.int64]) -> Array:
    """Per step, the total of ``a`` over its block so far (through that step)."""
    c = np.cumsum(a, axis=-1)
    return np.asarray(c - np.take(lagged(c)[..., starts], step_block, axis=-1), dtype=np.float64)


def predictable_upper_quantile(loglik: Array, grid: Sequence[float], prior: Sequence[float], *,
                               early: float, late: float, blocks: float) -> Array:
    """Per block ``[..., B]``: an upper quantile of the posterior over ``grid`` from the blocks
    *before* it (``loglik``: ``[G, ..., B]``, each block's log-likelihood of each grid value).

    The level starts at ``early`` and relaxes towards ``late`` over about ``blocks`` blocks: one
    block carries little information about a variance, so the first caps must be cautious, and a
    fixed high level would keep charging clean runs long after the data have spoken. Block j never
    sees itself or later blocks, so whatever uses the cap stays predictable.
    """
    before = lagged(np.cumsum(loglik, axis=-1))
    shape = (-1,) + (1,) * (loglik.ndim - 1)
    post = np.log(np.asarray(prior) / sum(prior)).reshape(shape) + before
    post = np.exp(post - post.max(axis=0, keepdims=True))
    cdf = np.cumsum(post / post.sum(axis=0, keepdims=True), axis=0)
    seen = np.arange(loglik.shape[-1])
    level = late + (early - late) * np.exp(-seen / blocks)
    return np.asarray(np.asarray(grid)[np.minimum((cdf < level).sum(axis=0), len(grid) - 1)], dtype=np.float64)
