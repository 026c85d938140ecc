"""``iscsi-analyzer annotate``: the capture as pcapng with our findings as packet comments.

Every evidence frame of a finding (at or above ``--min-severity``) gets a comment
"iscsi-analyzer: KIND (SEVERITY): MESSAGE [RFC 7143 §x]", and every frame where a connection,
cleanup or session machine changes state gets "iscsi-analyzer: state MACHINE SIDE LABEL:
FROM -> TO (...)". In Wireshark: ``frame.comment contains "cleanup_wait_stuck"``; the
coloring rules and filter buttons in ``wireshark/`` use the same text.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import click

from analyzer.cli.app import SEVERITY, InputError, _options, port_option
from analyzer.cli.limits import limit_options

#: Every comment we write starts with this, so a filter can tell ours from the capture's own.
PREFIX = "iscsi-analyzer: "


def finding_comment(a: Any) -> str:
    """The comment on an evidence frame of Anomaly ``a``."""
    rfc = f" [RFC 7143 {a.rfc}]" if a.rfc and a.rfc.startswith("§") else (f" [{a.rfc}]" if a.rfc else "")
    where = a.session or a.conn
    return f"{PREFIX}{a.kind} ({a.severity}): {a.message}{rfc}" + (f" ({where})" if where else "")


def transition_comment(t: Any) -> str:
    """The comment on the frame of state change ``t`` (a ``state.events.Transition``)."""
    label = t.label or "placed"
    who = t.conn if t.machine != "session" and t.conn else t.session
    inferred = ", inferred" if t.inferred else ""
    return (f"{PREFIX}state {t.machine} {t.side} {label}: {t.from_state} -> {t.to_state} "
            f"({t.event}{inferred}; {who})")


@click.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The annotated pcapng to write (replaced atomically).")
@click.option("--min-severity", type=SEVERITY, default="info", show_default=True,
              help="Comment findings from this level up.")
@click.option("--no-states", is_flag=True, help="Do not comment state changes, only findings.")
@click.option("--vxlan-port", "vxlan_ports", multiple=True, type=click.IntRange(1, 65535),
              help="Also decode this UDP port as VXLAN (repeatable; 4789 always is).")
@port_option
@limit_options
def annotate(capture: str, output: str, min_severity: str, no_states: bool, vxlan_ports: tuple[int, ...],
             ports: tuple[int, ...], limits: dict[str, int]) -> None:
    """Write CAPTURE to OUTPUT as pcapng with the findings as Wireshark packet comments."""
    import os

    from analyzer.anomalies import severity_at_least
    from analyzer.capture import CaptureError, iter_tcp, open_capture
    from analyzer.capture.annotate import write_annotated
    from analyzer.pipeline import Pipeline
    from analyzer.records import Anomaly
    from analyzer.state.events import Transition

    if os.path.abspath(output) == os.path.abspath(capture):
        raise InputError(f"{output}: the output must not be the capture itself")
    notes: dict[int, list[str]] = defaultdict(list)
    findings = 0
    pipeline = Pipeline(_options(ports, state=True, anomalies=True, limits=limits))
    try:
        reader = open_capture(capture, vxlan_ports=(4789, *vxlan_ports))
    except CaptureError as e:
        raise InputError(str(e)) from e

    def take(recs: list[Any]) -> None:
        nonlocal findings
        for rec in recs:
            if type(rec) is Anomaly:
                if severity_at_least(rec.severity, min_severity):
                    findings += 1
                    text = finding_comment(rec)
                    for frame in sorted(set(rec.frames or (rec.frame,))):
                        if frame > 0:
                            notes[frame].append(text)
            elif type(rec) is Transition and not no_states and rec.frame > 0:
                notes[rec.frame].append(transition_comment(rec))

    with reader:
        for seg in iter_tcp(reader):
            recs = pipeline.feed_segment(*seg)
            if recs:
                take(recs)
        for damage in reader.damage:
            if pipeline.detectors is not None:
                take(pipeline.detectors.feed(damage))
        take(pipeline.finish())
    try:
        res = write_annotated(capture, output, notes)
    except CaptureError as e:
        raise InputError(str(e)) from e
    except OSError as e:
        raise InputError(f"{output}: cannot write ({e.strerror or e})") from e
    click.echo(f"{output}: {res.frames} frames, {res.comments} comments on {res.commented} frames "
               f"({findings} findings at or above {min_severity})")
    for message in res.damage:
        click.echo(f"iscsi-analyzer: warning: {message}; everything before it was annotated", err=True)
