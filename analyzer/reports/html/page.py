"""The HTML page: CSS, navigation, and ``render`` assembling the sections.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Final

from analyzer.reports.html.context import _Ctx
from analyzer.reports.html.diagnosis import _drops, _nops, _paths, _queues, _story
from analyzer.reports.html.sections import (
    _anomalies,
    _latency,
    _tasks,
    _throughput,
)
from analyzer.reports.html.sessions import _sessions, _summary
from analyzer.reports.html.text import _fmt_abs, _fmt_dur, e
from analyzer.reports.html.timeline import _timeline

if TYPE_CHECKING:
    from analyzer.reports.analysis import Analysis


_CSS: Final = """
:root{--navy:#0b2545;--ink:#1d2733;--muted:#6b7785;--line:#dfe4ea;--bg:#f4f6f9;--card:#fff;--accent:#13a89e}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",
Arial,"Noto Sans",sans-serif}
header{background:linear-gradient(90deg,#0b2545,#13315c);color:#fff;padding:18px 32px 14px}
header h1{margin:0;font-size:22px;font-weight:600;letter-spacing:.2px}
header .sub{color:#b8c7da;font-size:13px;margin-top:4px;word-break:break-all}
header .brand{float:right;color:#8fd9d2;font-weight:600;font-size:13px;letter-spacing:1px;text-transform:uppercase}
nav{background:#fff;border-bottom:1px solid var(--line);padding:0 32px;position:sticky;top:0;z-index:2}
nav a{display:inline-block;padding:10px 12px;color:var(--navy);text-decoration:none;font-weight:500;font-size:13px}
nav a:hover{background:#eef3f8}
main{max-width:1320px;margin:0 auto;padding:8px 28px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin:18px 0;
box-shadow:0 1px 2px rgba(16,24,40,.04)}
h2{margin:0 0 10px;font-size:18px;color:var(--navy);border-left:4px solid var(--accent);padding-left:10px}
h3{font-size:15px;margin:18px 0 8px;color:var(--navy)}
h4{font-size:13px;margin:14px 0 6px;color:#34495e;text-transform:uppercase;letter-spacing:.4px}
.intro{color:var(--muted);margin:0 0 12px}
.muted{color:var(--muted);font-weight:normal}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:6px 0 12px}
.card{flex:1 1 130px;border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fbfcfd}
.card .cv{font-size:22px;font-weight:600;color:var(--navy)}
.card .cl{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.card.sev-error{border-top:3px solid #d23c3c}.card.sev-warning{border-top:3px solid #e5a017}
.card.sev-info{border-top:3px solid #3f7fd0}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:22px}
@media (max-width:1000px){.cols{grid-template-columns:1fr}}
.tw{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
thead th{background:#f0f3f7;color:#34495e;font-weight:600;font-size:12px;white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfc}
table.narrow{width:auto;min-width:320px}
table.num td{font-variant-numeric:tabular-nums}
table.kv th{width:34%;color:var(--muted);font-weight:500;background:none}
table.kv td{word-break:break-all}
table.anom td{font-size:12.5px}
table.anom td:nth-child(7){min-width:300px}table.anom td:nth-child(6){max-width:150px}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.small{font-size:11px;word-break:break-all}
code.filter{display:inline-block;background:#f2f5f8;border:1px solid #d5dde6;border-radius:4px;padding:2px 6px;
user-select:all;-webkit-user-select:all;cursor:copy;white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:11.5px;font-weight:600;white-space:nowrap}
.b-ok{background:#e3f5ec;color:#1b7a4b}.b-warn,.b-warning{background:#fdf1d8;color:#94620a}
.b-err,.b-error{background:#fbe3e3;color:#a62727}.b-info{background:#e4eefb;color:#2d5fa3}
.b-neutral{background:#eceff3;color:#4b5563}
.scard{border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:14px 0;background:#fdfdfe}
.scard h3{margin-top:2px}
.params{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:4px 14px}
.params .p{display:flex;justify-content:space-between;border-bottom:1px dotted var(--line);padding:2px 0;gap:8px}
.params .pk{color:var(--muted)}.params .pv{font-weight:600;word-break:break-all;text-align:right}
details{margin-top:10px}summary{cursor:pointer;color:var(--navy);font-weight:500}
.warnings{background:#fff8e6;border:1px solid #f3d58a;border-radius:8px;padding:4px 16px}
.warnings h3{margin-top:10px}.warnings li{margin:3px 0}
.okbox{background:#eaf7f0;border:1px solid #b9e3cb;border-radius:8px;padding:10px 16px;color:#1b7a4b}
.empty{background:#f6f8fa;border:1px dashed #c5ced8;border-radius:8px;padding:18px;color:var(--muted);
text-align:center;margin:8px 0}
svg.chart{width:100%;height:auto;display:block;font-family:inherit}
svg .lane{fill:#f3f5f8}svg .grid{stroke:#e3e7ec;stroke-width:1}
svg .tick{font-size:10.5px;fill:#5d6b7a}svg .axt{font-size:11px;fill:#6b7785}
svg .lbl{font-size:11px;fill:#2c3e50}svg .lbl.sess{font-weight:700;fill:#0b2545}svg .side{fill:#8794a3;font-size:10px}
svg .plot{fill:#fbfcfd;stroke:#e3e7ec}
svg .box{fill:#cfe0f5;stroke:#2f7fd1;stroke-width:1.2}svg .med{stroke:#0b2545;stroke-width:2.2}
svg .whisk{stroke:#5d6b7a;stroke-width:1.2}svg .mx{fill:#d23c3c}
svg.spark rect{fill:#2f7fd1}svg.spark rect.base{fill:#c5ced8}
.legend{margin:4px 0 8px;font-size:12px}
.lg{display:inline-flex;align-items:center;margin-right:14px;white-space:nowrap}
.lg i{display:inline-block;width:14px;height:10px;border-radius:2px;margin-right:5px}
.lg i.tri{width:0;height:0;border-left:6px solid transparent;border-right:6px solid transparent;
border-bottom:10px solid;border-radius:0;background:none;transform:rotate(180deg)}
footer{color:var(--muted);font-size:12px;text-align:center;padding:10px 0 30px}
"""


def render(analysis: Analysis, show_secrets: bool = False) -> str:
    """The whole report as one HTML document (no scripts, no external resources)."""
    c = _Ctx(analysis, show_secrets)
    cap = analysis.capture
    sections = [
        _story(c),
        _summary(c),
        _drops(c),
        _sessions(c),
        _timeline(c),
        _paths(c),
        _queues(c),
        _nops(c),
        _tasks(c),
        _latency(c),
        _throughput(c),
        _anomalies(c),
    ]
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("story", "What happened"),
            ("summary", "Summary"),
            ("drops", "Drops"),
            ("sessions", "Sessions"),
            ("timeline", "State timeline"),
            ("paths", "Paths"),
            ("queue", "Queue depth"),
            ("nops", "NOP pings"),
            ("tasks", "Tasks"),
            ("latency", "Latency"),
            ("throughput", "Throughput"),
            ("anomalies", "Anomalies"),
        )
    )
    title = f"iSCSI analysis · {cap.name or cap.file or 'capture'}"
    sub = (
        f"{e(cap.file or cap.name)} · {e(_fmt_abs(c.t0))} · {e(_fmt_dur((c.t1 - c.t0) / 1e9))} · "
        f"{cap.frames:,} frames"
    )
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><span class="brand">iscsi-analyzer</span><h1>iSCSI capture analysis</h1>'
        f'<div class="sub">{sub}</div></header>'
        f"<nav>{nav}</nav><main>{''.join(sections)}</main>"
        f"<footer>Generated by iscsi-analyzer {e(cap.analyzer_version)} · RFC 7143 (iSCSI) · "
        "times are capture timestamps</footer></body></html>\n"
    )
