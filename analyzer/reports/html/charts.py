"""Inline SVG charts of the HTML report: axes and ticks, the latency box chart and sparklines,
the throughput/IOPS line chart and its time bins.
"""
from __future__ import annotations

import math
from typing import Final

import numpy as np
import pandas as pd

from analyzer.reports.html.context import _Ctx
from analyzer.reports.html.text import (
    _clip,
    _fmt_abs,
    _fmt_dur,
    e,
)


def _nice_step(span: float, n: int) -> float:
    if span <= 0:
        return 1.0
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def _ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    step = _nice_step(hi - lo, n)
    start = math.ceil(lo / step - 1e-9) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _fmt_tick(v: float, step: float) -> str:
    if step >= 1:
        return f"{v:,.0f}"
    digits = max(
        0, -math.floor(math.log10(step)) + (1 if step * 10 ** -math.floor(math.log10(step)) == 2.5 else 0)
    )
    return f"{v:.{digits}f}"


def _time_axis_svg(c: _Ctx, left: float, plot_w: float, top: float, bottom: float, height: float) -> str:
    span_s = (c.t1 - c.t0) / 1e9
    ticks = _ticks(0.0, span_s, 8)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    out = []
    for v in ticks:
        xx = left + v / span_s * plot_w
        out.append(f'<line x1="{xx:.2f}" y1="{top + 6}" x2="{xx:.2f}" y2="{bottom}" class="grid"/>')
        out.append(
            f'<text x="{xx:.2f}" y="{top + 2}" class="tick" text-anchor="middle">{_fmt_tick(v, step)}</text>'
        )
    out.append(
        f'<text x="{left + plot_w:.2f}" y="{bottom + 20}" class="axt" text-anchor="end">seconds since '
        f"first frame ({e(_fmt_abs(c.t0))})</text>"
    )
    return "".join(out)


_LAT_BINS: Final = np.logspace(-6, 2, 33)  # 1 µs .. 100 s, 4 bins per decade


def _latency_boxes(frame: pd.DataFrame, ops: list[str]) -> str:
    W, LEFT, RIGHT, TOP, ROW = 1200, 200, 30, 30, 26
    plot_w = W - LEFT - RIGHT
    lat = frame["lat"].to_numpy()
    pos = lat[lat > 0]
    # whole decades with some room on both sides, so a box never sits on the frame
    llo = math.floor(math.log10(pos.min()) - 0.25) if len(pos) else -6
    lhi = math.ceil(math.log10(pos.max()) + 0.25) if len(pos) else 0
    lo = 10.0**llo

    def x(v: float) -> float:
        v = max(v, lo)
        return LEFT + (math.log10(v) - llo) / (lhi - llo) * plot_w

    height = TOP + ROW * len(ops) + 40
    out = []
    for k in range(llo, lhi + 1):
        xx = x(10.0**k)
        out.append(f'<line x1="{xx:.2f}" y1="{TOP - 6}" x2="{xx:.2f}" y2="{height - 34}" class="grid"/>')
        out.append(
            f'<text x="{xx:.2f}" y="{TOP - 10}" class="tick" text-anchor="middle">{_fmt_dur(10.0**k)}</text>'
        )
    for i, op in enumerate(ops):
        v = frame.loc[frame["op"] == op, "lat"].to_numpy()
        p5, p25, p50, p75, p99 = np.percentile(v, [5, 25, 50, 75, 99])
        y = TOP + i * ROW
        mid = y + ROW / 2
        tip = (
            f"{op}: {len(v):,} commands\np5 {_fmt_dur(p5)} · p25 {_fmt_dur(p25)} · median {_fmt_dur(p50)} · "
            f"p75 {_fmt_dur(p75)} · p99 {_fmt_dur(p99)} · max {_fmt_dur(float(v.max()))}"
        )
        out.append(
            f'<text x="{LEFT - 8}" y="{mid + 4}" class="lbl" text-anchor="end">{e(_clip(op, 26))}</text>'
        )
        out.append(
            f"<g><title>{e(tip)}</title>"
            f'<line x1="{x(p5):.2f}" y1="{mid}" x2="{x(p99):.2f}" y2="{mid}" class="whisk"/>'
            f'<line x1="{x(p5):.2f}" y1="{mid - 5}" x2="{x(p5):.2f}" y2="{mid + 5}" class="whisk"/>'
            f'<line x1="{x(p99):.2f}" y1="{mid - 5}" x2="{x(p99):.2f}" y2="{mid + 5}" class="whisk"/>'
            f'<rect x="{x(p25):.2f}" y="{mid - 8}" width="{max(x(p75) - x(p25), 1.5):.2f}" height="16" '
            f'class="box"/>'
            f'<line x1="{x(p50):.2f}" y1="{mid - 8}" x2="{x(p50):.2f}" y2="{mid + 8}" class="med"/>'
            f'<circle cx="{x(float(v.max())):.2f}" cy="{mid}" r="2.6" class="mx"/></g>'
        )
        out.append(f'<text x="{W - RIGHT + 4}" y="{mid + 4}" class="tick">{len(v):,}</text>')
    out.append(
        f'<text x="{LEFT + plot_w:.2f}" y="{height - 12}" class="axt" text-anchor="end">latency (log scale) · '
        "box p25–p75 · bar median · whiskers p5–p99 · dot max · count at right</text>"
    )
    return (
        f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="Latency per operation">'
        + "".join(out)
        + "</svg>"
    )


def _sparkline(v: np.ndarray) -> str:
    counts, _ = np.histogram(np.clip(v, 1e-6, 99.9), bins=_LAT_BINS)
    top = counts.max() or 1
    bw = 4
    bars = "".join(
        f'<rect x="{i * bw}" y="{24 - 22 * n / top:.1f}" width="{bw - 1}" height="{22 * n / top:.1f}"/>'
        for i, n in enumerate(counts)
        if n
    )
    return (
        f'<svg class="spark" viewBox="0 0 {len(counts) * bw} 24" width="{len(counts) * bw}" height="24">'
        f'<rect x="0" y="23.5" width="{len(counts) * bw}" height="0.5" class="base"/>{bars}</svg>'
    )


_BIN_STEPS: Final = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    21600,
    43200,
    86400,
)


def _bin_width(span_s: float, target: int = 120) -> float:
    want = span_s / target
    for s in _BIN_STEPS:
        if s >= want:
            return s
    return _BIN_STEPS[-1]


def _line_chart(
    xs: np.ndarray, series: list[tuple[str, np.ndarray, str]], unit: str, width: float, c: _Ctx
) -> str:
    W, H, LEFT, RIGHT, TOP, BOTTOM = 600, 230, 58, 14, 26, 38
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    x_lo, x_hi = float(xs[0] - width / 2), float(xs[-1] + width / 2)
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    ymax = max(float(max((s.max() for _, s, _ in series), default=0)), 1e-9)
    yt = _ticks(0, ymax * 1.05, 5)
    y_hi = max(yt[-1], ymax) if yt else ymax

    def X(v: float) -> float:
        return LEFT + (v - x_lo) / (x_hi - x_lo) * pw

    def Y(v: float) -> float:
        return TOP + ph - v / y_hi * ph

    out = [f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="plot"/>']
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1
    for v in yt:
        out.append(f'<line x1="{LEFT}" y1="{Y(v):.2f}" x2="{LEFT + pw}" y2="{Y(v):.2f}" class="grid"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{Y(v) + 4:.2f}" class="tick" text-anchor="end">{_fmt_tick(v, ystep)}</text>'
        )
    xt = _ticks(x_lo, x_hi, 6)
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1
    for v in xt:
        out.append(f'<line x1="{X(v):.2f}" y1="{TOP}" x2="{X(v):.2f}" y2="{TOP + ph}" class="grid"/>')
        out.append(
            f'<text x="{X(v):.2f}" y="{TOP + ph + 15}" class="tick" text-anchor="middle">'
            f"{_fmt_tick(v, xstep)}</text>"
        )
    out.append(
        f'<text x="{LEFT + pw}" y="{H - 6}" class="axt" text-anchor="end">seconds since first frame</text>'
    )
    out.append(f'<text x="{LEFT}" y="{TOP - 10}" class="axt">{e(unit)}</text>')
    lx = LEFT + pw
    for name, s, col in reversed(series):
        if len(xs) == 1:
            pts = f"{X(x_lo):.2f},{Y(float(s[0])):.2f} {X(x_hi):.2f},{Y(float(s[0])):.2f}"
        else:
            pts = " ".join(f"{X(float(a)):.2f},{Y(float(b)):.2f}" for a, b in zip(xs, s, strict=True))
        out.append(
            f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="1.6" '
            f'stroke-linejoin="round"><title>{e(name)}: peak {float(s.max()):,.2f}</title></polyline>'
        )
        lx -= 8 + 7 * len(name)
        out.append(
            f'<rect x="{lx}" y="{TOP - 19}" width="10" height="3" fill="{col}"/>'
            f'<text x="{lx + 13}" y="{TOP - 14}" class="tick">{e(name)}</text>'
        )
    return f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{e(unit)} over time">{"".join(out)}</svg>'
