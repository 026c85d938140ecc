"""What a batch run writes besides the chains' dataset parts: ``report.html`` and ``batch.json``."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analyzer.batch.runner import ChainResult


def clear_dataset(out: str) -> None:
    import shutil

    from analyzer.reports.dataset import DATASET_TABLES

    for t in DATASET_TABLES:
        d = Path(out) / t
        if d.is_dir():
            shutil.rmtree(d)


def write_html(out: str, results: list[ChainResult], limits: Any) -> Path:
    """The whole set's report, from the dataset the chain tasks wrote (pdus up to the row limit)."""
    from analyzer.reports import dataset
    from analyzer.reports.analysis import Analysis, CaptureInfo

    merged = dataset.concat_tables([
        {t: dataset.read_table(out, t, chain=r.id) for t in dataset.DATASET_TABLES if t != "pdus"} for r in results])
    merged["pdus"] = dataset.read_table(out, "pdus", max_rows=limits.max_pdu_rows)
    infos = [r.capture for r in results]
    firsts = [i.first_ts_ns for i in infos if i.first_ts_ns is not None]
    lasts = [i.last_ts_ns for i in infos if i.last_ts_ns is not None]
    n_files = sum(len(r.files) for r in results)
    info = CaptureInfo(
        file=out,
        name=f"batch: {n_files} file(s) in {len(results)} chain(s)",
        size_bytes=sum(i.size_bytes or 0 for i in infos),
        format="/".join(sorted({i.format for i in infos if i.format})),
        frames=sum(i.frames for i in infos),
        bytes=sum(i.bytes for i in infos),
        non_tcp=sum(i.non_tcp for i in infos),
        truncated_frames=sum(i.truncated_frames for i in infos),
        first_ts_ns=min(firsts) if firsts else None,
        last_ts_ns=max(lasts) if lasts else None,
        pdus=sum(i.pdus for i in infos),
        damage=[d for i in infos for d in i.damage],
        stats=sum_stats([i.stats for i in infos]),
        analyzer_version=infos[0].analyzer_version if infos else "",
        state_tracker=all(i.state_tracker for i in infos),
        anomaly_engine=all(i.anomaly_engine for i in infos),
    )
    analysis = Analysis.from_tables(merged, info)
    return analysis.to_html(Path(out) / "report.html")


def sum_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in stats:
        for k, v in s.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                if k == "records" and isinstance(v, dict):
                    rec = out.setdefault("records", {})
                    for name, n in v.items():
                        rec[name] = rec.get(name, 0) + n
                continue
            if k in ("first_ts_ns",):
                out[k] = v if k not in out else min(out[k], v)
            elif k in ("last_ts_ns", "last_frame"):
                out[k] = v if k not in out else max(out[k], v)
            else:
                out[k] = out.get(k, 0) + v
    return out


def write_manifest(out: str, results: list[ChainResult], failed: list[tuple[str, str]], sched: str,
                    nworkers: int, t0: float) -> Path:
    doc = {
        "format_version": 1,
        "scheduler": sched,
        "workers": nworkers,
        "seconds": round(time.perf_counter() - t0, 3),
        "failed": [{"path": p, "error": m} for p, m in failed],
        "chains": [
            {
                "id": r.id, "how": r.how, "frames": r.frames, "pdus": r.pdus, "sessions": r.sessions,
                "tasks": r.tasks, "anomalies": r.anomalies, "units": r.units, "rerun_units": r.rerun_units,
                "direct_files": r.direct_files, "seconds": round(r.seconds, 3), "error": r.error,
                "files": [dataclasses.asdict(f) for f in r.files],
                "capture": r.capture.to_dict() if r.capture is not None else None,
            }
            for r in results
        ],
    }
    path = Path(out) / "batch.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path
