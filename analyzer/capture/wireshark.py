"""Wireshark's full iSCSI/SCSI dissection of a capture, through pyshark (``crosscheck --deep``).

Part of the capture layer because it runs tshark on a file. pyshark drives ``tshark -T pdml``
and gives each dissected protocol of a frame as a layer; a frame that carries several iSCSI PDUs
has several ``iscsi`` layers, in wire order. Field names are Wireshark's with the protocol
prefix dropped and dots turned into underscores (``iscsi.scsicommand.expecteddatatransferlength``
is ``scsicommand_expecteddatatransferlength``), as pyshark spells them.

The PDML mode is used, not pyshark's JSON mode: it is slower (roughly 10-40 ms a frame) but
gives every field flat and every repeated field (``keyvalue``) complete, which is what a
field-by-field comparison needs; ``limit`` bounds the work on big captures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from analyzer.capture.tshark import TsharkError, tshark_path

#: Fields of a layer: Wireshark field name (pyshark spelling) -> every value, in wire order.
Fields = dict[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class WiresharkPdu:
    """One iSCSI PDU as Wireshark dissected it."""

    frame: int
    index: int  #: position among the iSCSI PDUs of its frame (0 first)
    iscsi: Fields
    #: the frame's SCSI layer when the frame carries exactly one iSCSI PDU and one SCSI layer
    #: (with several, Wireshark's layers cannot be paired with PDUs reliably), else None
    scsi: Fields | None


def _layer_fields(layer: object) -> Fields:
    out: Fields = {}
    for name in getattr(layer, "field_names", ()):
        if not name:
            continue
        field = layer.get_field(name)  # type: ignore[attr-defined]
        if field is None:
            continue
        values = getattr(field, "all_fields", None) or [field]
        out[name] = tuple(str(getattr(v, "show", v)) for v in values)
    return out


def wireshark_pdus(path: str, ports: Iterable[int] = (), *, limit: int = 2000,
                   timeout: float = 600.0) -> list[WiresharkPdu]:
    """Up to ``limit`` iSCSI PDUs as Wireshark dissects them, in frame order.

    ``ports``: further TCP ports to decode as iSCSI (3260 and 860 always are). Raises
    ``TsharkError`` (one line) when tshark or pyshark is missing or tshark fails.
    """
    if tshark_path() is None:
        raise TsharkError("tshark not found (apt-get install tshark)")
    try:
        import pyshark
    except ImportError as e:  # declared dependency; a broken install still gets one line
        raise TsharkError(f"pyshark is not importable ({e}); reinstall: pip install pyshark") from e

    decode_as = {f"tcp.port=={p}": "iscsi" for p in sorted(set(ports) - {3260, 860})}
    cap = pyshark.FileCapture(str(path), display_filter="iscsi", keep_packets=False,
                              decode_as=decode_as or None,
                              custom_parameters=["-o", "tcp.reassemble_out_of_order:FALSE"])
    out: list[WiresharkPdu] = []
    try:
        for pkt in cap:
            layers = pkt.get_multiple_layers("iscsi")
            scsi_layers = pkt.get_multiple_layers("scsi")
            scsi = _layer_fields(scsi_layers[0]) if len(layers) == 1 and len(scsi_layers) == 1 else None
            frame = int(pkt.number)
            for i, layer in enumerate(layers):
                out.append(WiresharkPdu(frame, i, _layer_fields(layer), scsi))
            if len(out) >= limit:
                break
    except Exception as e:  # pyshark wraps tshark failures in its own exception types
        if isinstance(e, TsharkError):
            raise
        raise TsharkError(f"tshark (through pyshark) failed on {path}: {type(e).__name__}: {e}") from e
    finally:
        try:
            cap.close()
        except Exception:  # noqa: BLE001 - closing a finished tshark may fail; nothing to lose
            pass
    return out[:limit]
