"""Detection benchmark: our sequential judge against threshold rules, Kayenta, and the SPRT bound.

The grid of ../shared/statistics.md §5: canary traffic 1, 10, 100 req/s (baseline the same);
A/A; errors x1.5, x2, x5; p99 +10% / +25% as a scale shift and as a tail-only shift; and the
realism scenarios (baseline error rate varying per rollout, shared drift, overdispersed errors,
canary warm-up, traffic share 5% -> 25% -> 50%, latency that moves by the minute on each arm,
0.1 req/s). 30-minute horizon, 10 s steps,
deterministic seeds. Judges:

* ours: the default judge config (error-rate + latency, one alpha = 0.05 for the rollout,
  latency warm-up 2 min), deciding every 10 s -- the same code as ``analyzer judge`` (checked
  below on a few runs through judge_series);
* ours, warm-up 0: the same with no latency warm-up allowance;
* Argo: success ratio >= 0.99 and p99 <= 1.2 x nominal on a 5-minute window every minute,
  failureLimit 0 (the seed template's rule, canary-only), NaN fails;
* Kayenta: Mann-Whitney on per-minute points at 30 minutes (98% CI, High fails);
* bound: the two-sample SPRT's expected time, d(0.95||0.05) / information (§5.5).

Usage: python benchmarks/detection.py [--runs-aa 1000] [--runs-ab 500] [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from multiprocessing import Pool

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from analyzer.core.stats.errors import error_log_e  # noqa: E402
from analyzer.core.stats.evalue import first_crossing  # noqa: E402
from analyzer.core.stats.kayenta import Label, classify  # noqa: E402
from analyzer.core.stats.latency import latency_log_e  # noqa: E402
from analyzer.core.stats.mannwhitney import mann_whitney_batch  # noqa: E402
from analyzer.core.stats.power import error_information, label_information, sprt_bound_requests  # noqa: E402
from analyzer.core.stats.sequential import combine  # noqa: E402
from analyzer.judge.simulate import Scenario, SimData, _bucket_probs, simulate  # noqa: E402

ALPHA = 0.05
HORIZON = 1800.0
WARMUP = 120.0
DECISION = 10.0  # seconds between decisions


@dataclass(frozen=True)
class Cell:
    traffic: float
    name: str
    scenario: Scenario
    kind: str  # "aa", "errors", "latency"
    runs: int
    seed: int
    tolerance: float = 1.0  # the error-rate tolerance of our judge in this cell


def grid(runs_aa: int, runs_ab: int) -> list[Cell]:
    cells: list[Cell] = []
    seed = 1000
    for rps in (1.0, 10.0, 100.0):
        base = Scenario(canary_rps=rps)
        rows: list[tuple[str, Scenario, str]] = [
            ("A/A", base, "aa"),
            ("errors x1.5", replace(base, error_ratio=1.5), "errors"),
            ("errors x2", replace(base, error_ratio=2.0), "errors"),
            ("errors x5", replace(base, error_ratio=5.0), "errors"),
            ("p99 +10% scale", replace(base, p99_scale=1.1), "latency"),
            ("p99 +25% scale", replace(base, p99_scale=1.25), "latency"),
            ("p99 +10% tail", replace(base, p99_tail=1.1), "latency"),
            ("p99 +25% tail", replace(base, p99_tail=1.25), "latency"),
            ("A/A p0 0.1-1%", replace(base, error_rate_range=(0.001, 0.01)), "aa"),
            ("errors x2, p0 0.1-1%", replace(base, error_rate_range=(0.001, 0.01), error_ratio=2.0), "errors"),
            ("A/A shared drift", replace(base, drift=0.05), "aa"),
            ("A/A overdispersed (CV 0.2)", replace(base, overdispersion=0.2), "aa"),
            ("A/A overdispersed (CV 0.5)", replace(base, overdispersion=0.5), "aa"),
            ("A/A warm-up", replace(base, warmup=(1.5, 120.0)), "aa"),
            ("A/A share 5->25->50%", replace(base, canary_rps=rps * 0.1, baseline_rps=rps * 1.9,
                                             share_steps=((0.0, 0.05), (600.0, 0.25), (1200.0, 0.5))), "aa"),
        ]
        for name, scenario, kind in rows:
            seed += 1
            cells.append(Cell(rps, name, scenario, kind, runs_aa if kind == "aa" else runs_ab, seed))
        for cv in (0.2, 0.5):
            seed += 1
            cells.append(Cell(rps, f"A/A overdispersed (CV {cv}), tolerance 1.2", replace(base, overdispersion=cv),
                              "aa", runs_aa, seed, tolerance=1.2))
        # own seeds, so that adding it left every other cell's numbers as they were
        cells.append(Cell(rps, "A/A latency jitter (2%/min)", replace(base, latency_jitter=0.02), "aa", runs_aa,
                          7000 + int(rps)))
    cells.append(Cell(0.1, "A/A", Scenario(canary_rps=0.1), "aa", runs_aa, 9999))
    return cells


# -- judges ---------------------------------------------------------------------------------------


def ours(d: SimData, latency_warmup: float, tolerance: float = 1.0) -> np.ndarray:
    """Decision time per run (inf = no rollback by the horizon): the default judge config."""
    le = error_log_e(d.xc, d.xb, d.nc, d.nb, d.t, tolerance=tolerance)
    ll = latency_log_e(d.hc, d.hb, d.t, d.bounds, warmup=latency_warmup)
    latency_start = int(np.argmax(np.r_[0.0, d.t[:-1]] >= latency_warmup))
    combined = combine([le, ll], [0.5, 0.5], [0, latency_start])
    hit = first_crossing(combined[:, d.t <= HORIZON], math.log(1 / ALPHA))
    return np.where(hit >= 0, d.t[np.maximum(hit, 0)], np.inf)


def _quantile_rows(q: float, counts: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """histogram_quantile over rows of per-bucket counts ``[..., K]`` (NaN for empty rows)."""
    total = counts.sum(axis=-1)
    cum = np.cumsum(counts, axis=-1)
    rank = q * total
    k = np.minimum((cum < rank[..., None]).sum(axis=-1), counts.shape[-1] - 1)
    finite = bounds[np.isfinite(bounds)]
    upper = np.where(np.isfinite(bounds), bounds, finite[-1])
    lower = np.r_[0.0, upper[:-1]]
    below = np.where(k > 0, np.take_along_axis(cum, np.maximum(k - 1, 0)[..., None], -1)[..., 0], 0.0)
    inside = np.take_along_axis(counts, k[..., None], -1)[..., 0]
    frac = np.where(inside > 0, (rank - below) / np.where(inside > 0, inside, 1), 1.0)
    value = lower[k] + (upper[k] - lower[k]) * frac
    value = np.where(np.isfinite(bounds)[k], value, finite[-1])
    return np.where(total > 0, value, np.nan)


def argo(d: SimData, nominal_p99: float, window: int = 30, limit: int = 0) -> np.ndarray:
    """Every minute on the trailing window: success >= 0.99 and p99 <= 1.2 x nominal, NaN fails."""
    cn, cx = np.cumsum(d.nc, 1), np.cumsum(d.xc, 1)
    ch = np.cumsum(d.hc, 1)
    times = np.arange(6, len(d.t) + 1, 6) - 1  # every 60 s
    fails_e = np.zeros(d.nc.shape[0])
    fails_l = np.zeros(d.nc.shape[0])
    out = np.full(d.nc.shape[0], np.inf)
    for i in times:
        j = i - window
        n = cn[:, i] - (cn[:, j] if j >= 0 else 0)
        x = cx[:, i] - (cx[:, j] if j >= 0 else 0)
        h = ch[:, i] - (ch[:, j] if j >= 0 else 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = 1 - x / n
        fails_e += ~(ok >= 0.99)
        p99 = _quantile_rows(0.99, h, d.bounds)
        fails_l += ~(p99 <= 1.2 * nominal_p99)
        now = (fails_e > limit) | (fails_l > limit)
        out = np.where(np.isinf(out) & now, d.t[i], out)
    return out


def _minute_points(d: SimData) -> tuple[np.ndarray, ...]:
    per = 6
    m = len(d.t) // per

    def agg(a: np.ndarray) -> np.ndarray:
        return a[:, : m * per].reshape(a.shape[0], m, per, *a.shape[2:]).sum(axis=2)

    with np.errstate(invalid="ignore", divide="ignore"):
        ec = agg(d.xc) / agg(d.nc)
        eb = agg(d.xb) / agg(d.nb)
    return ec, eb, _quantile_rows(0.99, agg(d.hc), d.bounds), _quantile_rows(0.99, agg(d.hb), d.bounds)


def _kayenta_high(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """High classification per row (batched where no special rule applies)."""
    high = np.zeros(x.shape[0], dtype=bool)
    special = (np.isnan(x).any(1) | np.isnan(y).any(1) | (np.ptp(x, 1) == 0) | (np.ptp(y, 1) == 0))
    rows = np.flatnonzero(~special)
    if len(rows):
        low, _, est = mann_whitney_batch(x[rows], y[rows], 0.98)
        mx, my = x[rows].mean(1), y[rows].mean(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where((mx == 0) | (my == 0), np.nan, mx / my)
        high[rows] = (low > 0.25 * np.abs(est)) & (np.isnan(ratio) | (ratio >= 1.0))
    for r in np.flatnonzero(special):
        high[r] = classify(x[r], y[r]).label is Label.HIGH
    return high


def kayenta(d: SimData) -> np.ndarray:
    ec, eb, lc, lb = _minute_points(d)
    high = _kayenta_high(ec, eb) | _kayenta_high(lc, lb)
    return np.where(high, HORIZON, np.inf)


# -- measures -------------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summary(times: np.ndarray) -> dict[str, float]:
    detected = np.isfinite(times) & (times <= HORIZON)
    censored = np.where(detected, times, np.inf)
    return {"rate": float(detected.mean()), "k": int(detected.sum()), "n": len(times),
            "median": float(np.median(censored)), "p95": float(np.quantile(censored, 0.95, method="higher"))}


def bound_seconds(cell: Cell) -> float | None:
    s = cell.scenario
    lam_c, lam_b = s.canary_rps, s.baseline_rps or s.canary_rps
    share = lam_c / (lam_c + lam_b)
    if cell.kind == "errors" and s.error_rate_range is None:
        info = error_information(s.error_rate, s.error_ratio, share)
    elif cell.kind == "latency":
        from analyzer.judge.simulate import Z99

        fb = _bucket_probs(np.array([s.median]), s.sigma, s.__class__().__dict__ and _bounds())[0]
        fc = _bucket_probs(np.array([s.median * s.p99_scale]), s.sigma + math.log(s.p99_tail) / Z99, _bounds())[0]
        info = label_information(fc, fb, share)
    else:
        return None
    return sprt_bound_requests(info, ALPHA, 0.05) / (lam_c + lam_b)


def _bounds() -> np.ndarray:
    from analyzer.judge.simulate import ISTIO_BOUNDS

    return ISTIO_BOUNDS


def run_cell(cell: Cell) -> dict[str, object]:
    d = simulate(cell.scenario, cell.runs, cell.seed)
    nominal = float(_quantile_rows(0.99, _bucket_probs(np.array([cell.scenario.median]), cell.scenario.sigma,
                                                       d.bounds)[0], d.bounds))
    result: dict[str, object] = {"cell": cell}
    result["ours"] = summary(ours(d, WARMUP, cell.tolerance))
    result["ours_w0"] = summary(ours(d, 0.0)) if cell.kind == "latency" or "warm-up" in cell.name else None
    result["argo"] = summary(argo(d, nominal))
    result["kayenta"] = summary(kayenta(d))
    result["bound"] = bound_seconds(cell)
    return result


# -- report ---------------------------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    return ">H" if not math.isfinite(seconds) or seconds > HORIZON else f"{seconds / 60:.1f}"


def _fmt(s: dict[str, float] | None, aa: bool) -> str:
    if s is None:
        return "–"
    if aa:
        lo, hi = wilson(int(s["k"]), int(s["n"]))
        return f"{s['rate']:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"{s['rate']:.2f}, {_minutes(s['median'])}/{_minutes(s['p95'])}"


def report(results: list[dict[str, object]], elapsed: float) -> str:
    lines = [
        "A/A cells: false-rollback rate [Wilson 95%]. Other cells: detection rate within 30 min, "
        "median/p95 minutes to detect (>H: not within the horizon).",
        "",
        "| req/s | scenario | ours (default) | ours, warm-up 0 | Argo 5m fl=0 | Kayenta MW @30m | bound T2 (s) "
        "| ours median / T2 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cell = r["cell"]
        assert isinstance(cell, Cell)
        aa = cell.kind == "aa"
        ours_s = r["ours"]
        bound = r["bound"]
        ratio = "–"
        if isinstance(bound, float) and isinstance(ours_s, dict):
            if bound < 3 * DECISION:
                ratio = "cadence-limited"
            elif math.isfinite(ours_s["median"]) and ours_s["median"] <= HORIZON:
                ratio = f"{ours_s['median'] / bound:.2f}"
                w0 = r["ours_w0"]
                if isinstance(w0, dict) and cell.kind == "latency" and math.isfinite(w0["median"]):
                    ratio += f" (w0: {w0['median'] / bound:.2f})"
            else:
                ratio = "median >H"
        lines.append(
            f"| {cell.traffic:g} | {cell.name} | {_fmt(ours_s, aa)} | {_fmt(r['ours_w0'], aa)} "  # type: ignore[arg-type]
            f"| {_fmt(r['argo'], aa)} | {_fmt(r['kayenta'], aa)} "  # type: ignore[arg-type]
            f"| {'–' if bound is None else f'{bound:.1f}'} | {ratio} |"
        )
    lines += ["", f"runs: A/A cells {results[0]['cell'].runs}, others {results[1]['cell'].runs}; "  # type: ignore[attr-defined]
              f"wall time {elapsed:.0f} s"]
    return "\n".join(lines)


def _find(results: list[dict[str, object]], rps: float, name: str) -> dict[str, object]:
    return next(r for r in results if r["cell"].traffic == rps and r["cell"].name == name)  # type: ignore[attr-defined]


def targets(results: list[dict[str, object]]) -> str:
    """The issue's targets, each marked met or missed, for the default config (and warm-up 0)."""
    out = ["", "Targets (default config; 'w0' = latency warm-up 0):"]

    def mark(ok: bool) -> str:
        return "met   " if ok else "MISSED"

    for r in results:
        cell = r["cell"]
        assert isinstance(cell, Cell)
        if cell.kind == "aa":
            s = r["ours"]
            assert isinstance(s, dict)
            out.append(f"  {mark(s['rate'] <= 0.05)} A/A false rollback <= 5%: {cell.traffic:g} req/s "
                       f"{cell.name}: {s['rate']:.3f}")
    for rps, name in [(10, "errors x2"), (100, "errors x2"), (1, "errors x5"), (10, "errors x5"), (100, "errors x5"),
                      (10, "p99 +10% scale"), (100, "p99 +10% scale"), (10, "p99 +10% tail"),
                      (100, "p99 +10% tail")]:
        r = _find(results, rps, name)
        s, w0 = r["ours"], r["ours_w0"]
        assert isinstance(s, dict)
        extra = f" (w0: {w0['rate']:.3f})" if isinstance(w0, dict) else ""
        out.append(f"  {mark(s['rate'] >= 0.99)} detection >= 99% in 30 min: {rps} req/s {name}: "
                   f"{s['rate']:.3f}{extra}")
    for r in results:
        cell, s, w0, bound = r["cell"], r["ours"], r["ours_w0"], r["bound"]
        assert isinstance(cell, Cell) and isinstance(s, dict)
        if not isinstance(bound, float) or bound < 3 * DECISION or not s["median"] <= HORIZON:
            continue
        limit = 1.5 if cell.kind == "errors" else 2.5
        ratio = s["median"] / bound
        extra = f" (w0: {w0['median'] / bound:.2f})" if isinstance(w0, dict) and w0["median"] <= HORIZON else ""
        out.append(f"  {mark(ratio <= limit)} median / bound <= {limit}: {cell.traffic:g} req/s {cell.name}: "
                   f"{ratio:.2f}{extra}")
    for rps, name, factor in [(10, "errors x2", 5), (10, "p99 +10% scale", 20), (10, "p99 +10% tail", 20)]:
        r = _find(results, rps, name)
        s, w0, k = r["ours"], r["ours_w0"], r["kayenta"]
        assert isinstance(s, dict) and isinstance(k, dict)
        kay = k["median"] if k["median"] <= HORIZON else math.inf
        speed = kay / s["median"] if s["median"] <= HORIZON else 0.0
        extra = f" (w0: {kay / w0['median']:.1f}x)" if isinstance(w0, dict) and w0["median"] <= HORIZON else ""
        out.append(f"  {mark(speed >= factor)} >= {factor}x faster than Kayenta: {rps} req/s {name}: "
                   f"{speed:.1f}x{extra}")
    return "\n".join(out)


def consistency_check() -> str:
    """The batched path above must decide like the product (judge_series) on the same data."""
    from analyzer.judge import judge_series
    from analyzer.judge.simulate import series_lines

    d = simulate(Scenario(canary_rps=10.0, error_ratio=3.0), 4, 7)
    batched = ours(d, WARMUP)
    config = {"alpha": ALPHA, "horizon": HORIZON,
              "metrics": [{"name": "errors", "type": "error-rate"}, {"name": "latency", "type": "latency"}]}
    product = [r["decided_at"] if r["decision"] == "fail" else math.inf
               for r in judge_series(config, series_lines(d))]
    if not np.allclose(np.asarray(product, dtype=float), batched):
        raise SystemExit(f"benchmark path disagrees with judge_series: {batched} vs {product}")
    return "consistency: the batched judge and judge_series agree on 4 runs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-aa", type=int, default=1000)
    parser.add_argument("--runs-ab", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    start = time.monotonic()
    print(consistency_check())
    cells = grid(args.runs_aa, args.runs_ab)
    # Biggest cells first so the two workers finish together.
    order = sorted(range(len(cells)), key=lambda i: -cells[i].traffic * cells[i].runs)
    with Pool(args.workers) as pool:
        done = pool.map(run_cell, [cells[i] for i in order], chunksize=1)
    results = [r for _, r in sorted(zip(order, done, strict=True), key=lambda p: p[0])]
    print(report(results, time.monotonic() - start))
    print(targets(results))


if __name__ == "__main__":
    main()
