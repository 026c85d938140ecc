"""Key=value text split across Login/Text PDUs with the C bit (RFC 7143 §6.1): rejoined per
connection and direction, with the continuation rules (§6.1, §6.2, C bit of §11.10-§11.13)
checked on the way as Deviation records. Negotiation and the session's names come only from
the joined text.
"""

from __future__ import annotations

from analyzer.iscsi.text_keys import text_tail
from analyzer.records import (
    I2T,
    T2I,
    LoginRequest,
    LoginResponse,
    Pdu,
    TextRequest,
    TextResponse,
)
from analyzer.state import (
    desk,
)
from analyzer.state.books import (
    PDU_NAMES,
    Conn,
    Session,
)
from analyzer.state.desk import Desk
from analyzer.state.negotiation import TextJoiner


def ltds(d: Desk, c: Conn, s: Session | None,
          pdu: LoginRequest | LoginResponse | TextRequest | TextResponse) -> tuple[tuple[str, str], ...] | None:
    """The keys of the logical text data segment (§6.1) this Login/Text PDU completes -- its own
    keys when no C-bit series is open -- or None while its sender's text goes on. Checks the
    continuation rules on the way (§6.1, §6.2, C bit of §11.10-§11.13) as Deviation records."""
    side = "initiator" if pdu.direction == I2T else "target"
    name = PDU_NAMES[type(pdu).__name__]
    login = isinstance(pdu, (LoginRequest, LoginResponse))
    for direction, other in c.ltds.items():  # a PDU of another exchange ends any series still going on
        if other.open and other.tag != pdu.itt:
            ltds_abandoned(d, c, s, pdu, other, "initiator" if direction == I2T else "target",
                                 f"the {side} began another exchange (ITT {pdu.itt:#x}, {name} of frame "
                                 f"{pdu.frame})")
    owed = c.ltds_answer
    if owed is not None:
        # Only the peer's next PDU of the exchange answers a C=1 PDU; if the sender goes on first, the
        # answer is not in the capture (or never came): nothing to check.
        c.ltds_answer = None
        if owed[0] == pdu.direction and pdu.dsl and pdu.itt == owed[2]:
            desk.deviation(d, c, s, pdu.frame, pdu.ts_ns, "text_continuation_answer_not_empty", "§6.2",
                            f"the {side} answered the C=1 PDU of frame {owed[1]} with a {name} carrying "
                            f"{pdu.dsl} bytes of text; a PDU whose text continues must be answered by one "
                            f"without data", owed[1], side=side, itt=pdu.itt)
    more = pdu.cont
    last = pdu.transit if isinstance(pdu, (LoginRequest, LoginResponse)) else pdu.final
    if pdu.cont and last:
        bit, rfc = ("T", "§11.12" if pdu.direction == I2T else "§11.13") if login else \
            ("F", "§11.10" if pdu.direction == I2T else "§11.11")
        desk.deviation(d, c, s, pdu.frame, pdu.ts_ns, "text_continue_with_final", rfc,
                        f"{name} with both the C and the {bit} bit set; a PDU whose text continues must have "
                        f"{bit}=0 (its text is joined with the next {name})", pdu.frame, side=side, itt=pdu.itt)
    elif not pdu.cont and not login and not pdu.final and pdu.text and pdu.text[-1] != 0:
        more = True  # tgtd cuts long SendTargets replies anywhere and continues them with F=0 only
        cut = len(text_tail(pdu.text))
        desk.deviation(d, c, s, pdu.frame, pdu.ts_ns, "text_split_without_continue", "§6.1",
                        f"{name} with F=0 ends inside a key=value pair ({cut} bytes after its last NUL) "
                        f"without the C bit; only a C=1 PDU may split a pair. "
                        f"Its text is joined with the next {name} of the exchange", pdu.frame, side=side,
                        itt=pdu.itt)
    j = c.ltds.get(pdu.direction)
    if j is None:
        if not more:
            return pdu.keys
        j = c.ltds[pdu.direction] = TextJoiner()
    keys, breaks = j.feed(pdu.text, pdu.keys, pdu.dsl, more, pdu.frame, pdu.itt)
    for b in breaks:
        desk.deviation(d, c, s, pdu.frame, pdu.ts_ns, b.kind, b.rfc, b.detail, b.start_frame, side=side,
                        itt=pdu.itt)
    if pdu.cont:
        c.ltds_answer = (T2I if pdu.direction == I2T else I2T, pdu.frame, pdu.itt)
    return keys


def ltds_abandoned(d: Desk, c: Conn, s: Session | None, pdu: Pdu, j: TextJoiner, owner: str, why: str) -> None:
    # The deviation is on the sender of ``pdu``, the PDU that ended the series early.
    desk.deviation(d, c, s, pdu.frame, pdu.ts_ns, "text_continuation_abandoned", "§6.1",
                    f"the {owner}'s key=value text announced more with the C bit ({j.pdus} PDU(s) from frame "
                    f"{j.first_frame}) but {why} before it ended; that text is dropped", j.first_frame,
                    side="initiator" if pdu.direction == I2T else "target", itt=j.tag)
    j.reset()


def ltds_end(d: Desk, c: Conn, pdu: Pdu, why: str) -> None:
    """The login phase or Text exchange is over (``pdu`` ended it): no text may still be
    continuing (§6.1)."""
    for direction, j in list(c.ltds.items()):
        if j.open:
            ltds_abandoned(d, c, c.session, pdu, j, "initiator" if direction == I2T else "target",
                                 f"{why} (frame {pdu.frame})")
    c.ltds.clear()
    c.ltds_answer = None
