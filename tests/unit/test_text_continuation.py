"""Key=value text split across PDUs with the C bit (RFC 7143 §6.1, §6.2; C bit of §11.10-§11.13).

PDUs are built as wire bytes (tests/builders.py) and decoded with the real decoder, so the
records carry the raw ``text`` the state layer rejoins. Splits fall mid-key, mid-value, right
before and after the '=', right before the NUL, over 2 and 3 PDUs, in the login and the text
phase, from the initiator and from the target. A Hypothesis property checks that any split of
the same text gives the same joined keys and negotiation result as the unsplit text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

import builders as b
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.iscsi.text_keys import MAX_PAIRS, encode_keys, parse_keys, text_tail
from analyzer.records import (
    I2T,
    T2I,
    LoginRequest,
    LoginResponse,
    Pdu,
    Record,
    TcpOpened,
    TextRequest,
    TextResponse,
)
from analyzer.state.events import (
    ConnectionParams,
    Deviation,
    NegotiationIssue,
    Reinstatement,
    SessionIdentified,
    SessionSummary,
    TrackerError,
)
from analyzer.state.negotiation import Negotiation, TextJoiner
from analyzer.state.tracker import SessionTracker

MS = 1_000_000
CONN = "10.0.0.1:40000->10.0.0.2:3260"
INAME = "iqn.2016-04.com.example:initiator"
TNAME = "iqn.2016-04.com.example:storage.disk-with-a-long-name"
ISID = 0x400001370000
TTT = 0x77

Keys = Sequence[tuple[str, str]]

LOGIN_I: tuple[tuple[str, str], ...] = (
    ("InitiatorName", INAME), ("TargetName", TNAME), ("SessionType", "Normal"), ("InitiatorAlias", "host-a"),
    ("HeaderDigest", "CRC32C,None"), ("DataDigest", "None"), ("MaxRecvDataSegmentLength", "262144"),
    ("MaxBurstLength", "262144"), ("FirstBurstLength", "65536"), ("ImmediateData", "Yes"),
    ("InitialR2T", "No"), ("DefaultTime2Wait", "2"), ("DefaultTime2Retain", "20"), ("ErrorRecoveryLevel", "0"),
)
LOGIN_T: tuple[tuple[str, str], ...] = (
    ("TargetPortalGroupTag", "7"), ("TargetAlias", "array-1 disk"), ("HeaderDigest", "CRC32C"),
    ("DataDigest", "None"), ("MaxRecvDataSegmentLength", "65536"), ("MaxBurstLength", "131072"),
    ("FirstBurstLength", "32768"), ("ImmediateData", "Yes"), ("InitialR2T", "Yes"), ("DefaultTime2Wait", "3"),
    ("DefaultTime2Retain", "15"), ("ErrorRecoveryLevel", "0"),
)
TARGETS = tuple(f"iqn.2016-04.com.example:storage.lun-group-{i:02d}" for i in range(6))
SENDTARGETS_REPLY = tuple(kv for name in TARGETS for kv in (("TargetName", name),
                                                             ("TargetAddress", "10.0.0.2:3260,7")))


def cut(text: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(text)]
    return [text[a:z] for a, z in pairwise(bounds)]


def at(text: bytes, needle: bytes, delta: int = 0) -> int:
    """Offset of ``needle`` in ``text`` plus ``delta`` (a cut position)."""
    return text.index(needle) + delta


class Capture:
    """One TCP connection's records, PDUs decoded from wire bytes with the real decoder."""

    def __init__(self, conn: str = CONN) -> None:
        self.conn = conn
        self.frame = 0
        self.ts = 1_700_000_000 * 1_000_000_000
        self.statsn = 100
        self.cmdsn = 1
        self.records: list[Record] = []

    def _next(self) -> tuple[int, int]:
        self.frame += 1
        self.ts += MS
        return self.frame, self.ts

    def opened(self) -> None:
        f, t = self._next()
        client, server = self.conn.split("->")
        self.records.append(TcpOpened(f, t, self.conn, client.rsplit(":", 1)[0], int(client.rsplit(":", 1)[1]),
                                      server.rsplit(":", 1)[0], int(server.rsplit(":", 1)[1]), True))

    def add(self, wire: bytes, direction: str) -> Pdu:
        f, t = self._next()
        pdu = b.decode_wire(wire, frame=f, ts_ns=t, conn=self.conn, direction=direction)
        self.records.append(pdu)
        return pdu

    def window(self) -> dict[str, int]:
        return {"expcmdsn": self.cmdsn, "maxcmdsn": self.cmdsn + 31}

    def take_statsn(self) -> int:
        self.statsn += 1
        return self.statsn - 1

    # -- login: one stage (CSG=1 -> NSG=3) whose text each side may split with C=1
    def login(self, text_i: bytes, cuts_i: Iterable[int] = (), text_t: bytes = b"", cuts_t: Iterable[int] = (), *,
              isid: int = ISID, tsih: int = 0, tsih_assigned: int = 0x12, itt: int = 1,
              answer_i: bytes = b"", answer_t: bytes = b"") -> None:
        """Initiator pieces (C=1, T=0 but the last), each C=1 piece answered by a Login Response carrying
        ``answer_t`` (empty per §6.2); then the target's pieces likewise, answered with ``answer_i``."""
        pieces = cut(text_i, cuts_i)
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            self.add(b.login_request(data=piece, cont=not last, transit=last, csg=1, nsg=3, isid=isid, tsih=tsih,
                                     itt=itt, cmdsn=self.cmdsn), I2T)
            if not last:
                self.add(b.login_response(data=answer_t, transit=False, csg=1, nsg=3, isid=isid, tsih=0, itt=itt,
                                          statsn=self.take_statsn(), **self.window()), T2I)
        pieces = cut(text_t, cuts_t)
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            self.add(b.login_response(data=piece, cont=not last, transit=last, csg=1, nsg=3, isid=isid,
                                      tsih=tsih_assigned if last else 0, itt=itt, statsn=self.take_statsn(),
                                      **self.window()), T2I)
            if not last:
                self.add(b.login_request(data=answer_i, transit=False, csg=1, nsg=3, isid=isid, tsih=tsih, itt=itt,
                                         cmdsn=self.cmdsn), I2T)

    # -- text exchange: the request text and the reply text, each possibly split with C=1
    def text(self, text_i: bytes, cuts_i: Iterable[int] = (), text_t: bytes = b"", cuts_t: Iterable[int] = (), *,
             itt: int = 0x40, answer_t: bytes = b"") -> None:
        pieces = cut(text_i, cuts_i)
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            self.add(b.text_request(data=piece, cont=not last, final=last, itt=itt, ttt=b.RESERVED if k == 0 else TTT,
                                    cmdsn=self.cmdsn, expstatsn=self.statsn), I2T)
            self.cmdsn += 1
            if not last:
                self.add(b.text_response(data=answer_t, final=False, itt=itt, ttt=TTT, statsn=self.take_statsn(),
                                         **self.window()), T2I)
        pieces = cut(text_t, cuts_t)
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            self.add(b.text_response(data=piece, cont=not last, final=last, itt=itt,
                                     ttt=b.RESERVED if last else TTT, statsn=self.take_statsn(), **self.window()), T2I)
            if not last:
                self.add(b.text_request(data=b"", final=True, itt=itt, ttt=TTT, cmdsn=self.cmdsn,
                                        expstatsn=self.statsn), I2T)
                self.cmdsn += 1

    def feed(self, tracker: SessionTracker) -> list[Record]:
        out: list[Record] = []
        for r in self.records:
            out.extend(tracker.feed(r))
        return out

    def run(self) -> tuple[SessionTracker, list[Record]]:
        tr = SessionTracker()
        out = self.feed(tr)
        out.extend(tr.finish(self.ts + MS))
        return tr, out


def of(out: Iterable[Record], cls: type) -> list:  # type: ignore[type-arg]
    return [r for r in out if isinstance(r, cls)]


def session(out: list[Record]) -> SessionSummary:
    (s,) = of(out, SessionSummary)
    return s


def deviations(out: list[Record], kind: str | None = None) -> list[Deviation]:
    return [d for d in of(out, Deviation) if kind is None or d.kind == kind]


def negotiated(out: list[Record]) -> tuple[object, ...]:
    """Everything the login decided, for comparing a split login with the unsplit one."""
    s = session(out)
    (cp,) = of(out, ConnectionParams)
    issues = sorted((i.key, i.kind, i.offer, i.answer) for i in of(out, NegotiationIssue))
    return (s.session_type, s.initiator_name, s.target_name, s.initiator_alias, s.target_alias, s.tpgt,
            tuple(sorted(s.params.items())), cp.header_digest, cp.max_recv_dsl_initiator, cp.max_recv_dsl_target,
            tuple(issues))


# =========================================================================== per-PDU decode


@pytest.mark.parametrize(("raw", "cont", "keys", "tail"), [
    (b"A=1\0B=2", True, (("A", "1"),), b"B=2"),
    (b"A=1\0B=", True, (("A", "1"),), b"B="),  # cut right after '='
    (b"A=1\0B", True, (("A", "1"),), b"B"),  # cut right before '='
    (b"A=1\0Ke", True, (("A", "1"),), b"Ke"),  # mid-key
    (b"A=1\0", True, (("A", "1"),), b""),  # cut at a pair boundary
    (b"just-a-fragment", True, (), b"just-a-fragment"),
    (b"A=1\0B=2", False, (("A", "1"), ("B", "2")), b"B=2"),  # C=0: a missing final NUL is taken as it is
])
def test_parse_keys_continued(raw: bytes, cont: bool, keys: tuple[tuple[str, str], ...], tail: bytes) -> None:
    assert parse_keys(raw, continued=cont) == keys
    assert text_tail(raw) == tail


@pytest.mark.parametrize(("wire", "direction", "kind"), [
    (b.login_request(data=b"InitiatorName=iqn.x\0TargetNa", cont=True, transit=False), I2T, LoginRequest),
    (b.login_response(data=b"TargetPortalGroupTag=1\0TargetAlias=ar", cont=True, transit=False), T2I, LoginResponse),
    (b.text_request(data=b"InitiatorName=iqn.x\0SendTarg", cont=True, final=False), I2T, TextRequest),
    (b.text_response(data=b"InitiatorName=iqn.x\0TargetName=iqn.2016-04.com.ex", cont=True, final=False), T2I,
     TextResponse),
])
def test_c_bit_pdu_keys_leave_the_fragment_out(wire: bytes, direction: str, kind: type) -> None:
    pdu = b.decode_wire(wire, direction=direction)
    assert isinstance(pdu, kind)
    assert pdu.cont and len(pdu.keys) == 1 and pdu.keys[0][0] in ("InitiatorName", "TargetPortalGroupTag")
    assert all(k for k, _ in pdu.keys)  # no ("", fragment) pair
    assert pdu.text == b.split_pdu(wire).data  # the raw text, for rejoining


def test_text_response_f0_without_c_leaves_the_fragment_out() -> None:
    # tgtd cuts long replies anywhere and continues with F=0 (no C bit): the fragment is no pair either.
    pdu = b.decode_wire(b.text_response(data=b"TargetName=iqn.a\0TargetName=iqn.b", final=False, ttt=1),
                        direction=T2I)
    assert isinstance(pdu, TextResponse) and pdu.keys == (("TargetName", "iqn.a"),)


def test_raw_text_is_not_in_equality_or_repr() -> None:
    secret = b"CHAP_R=0x" + b"ab" * 16 + b"\0"
    pdu = b.decode_wire(b.login_request(data=secret))
    assert isinstance(pdu, LoginRequest) and pdu.text == secret
    assert "text=" not in repr(pdu)  # the keys show the value already (records keep raw values)
    assert pdu == b.decode_wire(b.login_request(data=secret))


# =========================================================================== TextJoiner


def test_joiner_single_pdu_is_free() -> None:
    j = TextJoiner()
    keys = (("A", "1"),)
    out, breaks = j.feed(b"A=1\0", keys, 4, False, 1, 0x10)
    assert out is keys and breaks == [] and not j.open


def test_joiner_rejoins_three_pieces() -> None:
    text = encode_keys(LOGIN_I)
    pieces = cut(text, [at(text, b"Name=", 3), at(text, b"262144", 2)])
    j = TextJoiner()
    outs = [j.feed(p, parse_keys(p, continued=k < 2), len(p), k < 2, k + 1, 7) for k, p in enumerate(pieces)]
    assert [o for o, _ in outs[:2]] == [None, None] and j.open is False
    assert outs[2][0] == LOGIN_I and all(not br for _, br in outs)


def test_joiner_over_its_limit_keeps_complete_pairs() -> None:
    text = encode_keys((("A", "1"), ("B", "x" * 40), ("C", "3"), ("D", "4")))
    pieces = cut(text, [10, 30])
    j = TextJoiner(limit=32)
    res = [j.feed(p, parse_keys(p, continued=k < 2), len(p), k < 2, k + 1, 7) for k, p in enumerate(pieces)]
    (brk,) = [br for _, brs in res for br in brs]
    assert brk.kind == "text_continuation_too_long" and brk.start_frame == 1
    keys = res[-1][0]
    assert keys is not None and ("A", "1") in keys and ("D", "4") in keys  # the split pair B is lost, said so


def test_joiner_without_raw_text_falls_back_to_pdu_keys() -> None:
    j = TextJoiner()
    assert j.feed(b"", (("A", "1"),), 10, True, 1, 7)[0] is None  # data segment not kept by the framer
    keys, breaks = j.feed(b"", (("B", "2"), ("", "frag")), 12, False, 2, 7)
    assert keys == (("A", "1"), ("B", "2")) and breaks == []


def test_joiner_too_many_pairs_is_reported() -> None:
    j = TextJoiner()
    text = b"A=1\0" * (MAX_PAIRS + 10)
    half = len(text) // 2 + 1
    assert j.feed(text[:half], (), half, True, 1, 7)[0] is None
    keys, breaks = j.feed(text[half:], (), len(text) - half, False, 2, 7)
    assert keys is not None and len(keys) == MAX_PAIRS
    assert [br.kind for br in breaks] == ["text_continuation_malformed"]


# =========================================================================== login phase

LOGIN_TEXT_I = encode_keys(LOGIN_I)
LOGIN_TEXT_T = encode_keys(LOGIN_T)

#: name -> cut positions in the initiator's login text
SPLITS_I: dict[str, list[int]] = {
    "mid_key": [at(LOGIN_TEXT_I, b"InitiatorName", 5)],
    "mid_value": [at(LOGIN_TEXT_I, b"iqn.2016-04.com.example:initiator", 9)],
    "before_eq": [at(LOGIN_TEXT_I, b"=iqn.2016-04.com.example:storage")],
    "after_eq": [at(LOGIN_TEXT_I, b"=iqn.2016-04.com.example:storage", 1)],
    "before_nul": [at(LOGIN_TEXT_I, b"Normal\0", 6)],
    "three_pdus": [at(LOGIN_TEXT_I, b"TargetName", 3), at(LOGIN_TEXT_I, b"262144", 3)],
    "three_pdus_name_spans_all": [at(LOGIN_TEXT_I, b"iqn.2016-04.com.example:initiator", 4),
                                  at(LOGIN_TEXT_I, b"iqn.2016-04.com.example:initiator", 20)],
}
SPLITS_T: dict[str, list[int]] = {
    "mid_key": [at(LOGIN_TEXT_T, b"TargetPortalGroupTag", 6)],
    "mid_value": [at(LOGIN_TEXT_T, b"array-1 disk", 4)],
    "before_eq": [at(LOGIN_TEXT_T, b"=131072")],
    "after_eq": [at(LOGIN_TEXT_T, b"=7\0", 1)],
    "before_nul": [at(LOGIN_TEXT_T, b"CRC32C\0", 6)],
    "three_pdus": [at(LOGIN_TEXT_T, b"TargetAlias", 2), at(LOGIN_TEXT_T, b"65536", 2)],
}


def _baseline() -> tuple[object, ...]:
    c = Capture()
    c.opened()
    c.login(LOGIN_TEXT_I, (), LOGIN_TEXT_T, ())
    return negotiated(c.run()[1])


BASELINE = _baseline()


def test_baseline_is_what_the_keys_say() -> None:
    stype, iname, tname, ialias, talias, tpgt, params, hd, mi, mt, _ = BASELINE  # type: ignore[misc]
    assert (stype, iname, tname, ialias, talias, tpgt) == ("Normal", INAME, TNAME, "host-a", "array-1 disk", 7)
    p = dict(params)  # type: ignore[call-overload]
    assert (p["MaxBurstLength"], p["FirstBurstLength"], p["InitialR2T"], p["DefaultTime2Wait"],
            p["DefaultTime2Retain"]) == ("131072", "32768", "Yes", "3", "15")
    assert (hd, mi, mt) == (True, 262144, 65536)


@pytest.mark.parametrize("split", SPLITS_I)
def test_login_request_split(split: str) -> None:
    c = Capture()
    c.opened()
    c.login(LOGIN_TEXT_I, SPLITS_I[split], LOGIN_TEXT_T, ())
    _, out = c.run()
    assert negotiated(out) == BASELINE
    (ident,) = of(out, SessionIdentified)
    assert (ident.initiator_name, ident.target_name, ident.session_type) == (INAME, TNAME, "Normal")
    assert deviations(out) == [] and of(out, TrackerError) == []
    # per PDU: no pair invented from the trailing fragment of a C=1 PDU (the head of a continuation PDU can
    # only be known as such from the previous PDU: that is the state layer's rejoining)
    continued = [r for r in c.records if isinstance(r, LoginRequest) and r.cont]
    assert len(continued) == len(SPLITS_I[split])
    for r in continued:
        assert r.keys == parse_keys(r.text[:r.text.rfind(b"\0") + 1])
    assert all(kv in LOGIN_I for kv in continued[0].keys)


@pytest.mark.parametrize("split", SPLITS_T)
def test_login_response_split(split: str) -> None:
    c = Capture()
    c.opened()
    c.login(LOGIN_TEXT_I, (), LOGIN_TEXT_T, SPLITS_T[split])
    _, out = c.run()
    assert negotiated(out) == BASELINE
    assert deviations(out) == [] and of(out, TrackerError) == []


def test_login_both_sides_split_at_once() -> None:
    c = Capture()
    c.opened()
    c.login(LOGIN_TEXT_I, SPLITS_I["three_pdus"], LOGIN_TEXT_T, SPLITS_T["three_pdus"])
    _, out = c.run()
    assert negotiated(out) == BASELINE and deviations(out) == []


def test_initiator_name_only_in_a_later_pdu_identifies_the_session() -> None:
    keys = (("SessionType", "Normal"), ("TargetName", TNAME), ("InitiatorName", INAME))
    text = encode_keys(keys)
    c = Capture()
    c.opened()
    c.login(text, [at(text, b"InitiatorName", 3)], LOGIN_TEXT_T, ())
    _, out = c.run()
    s = session(out)
    assert (s.initiator_name, s.target_name) == (INAME, TNAME)
    (ident,) = of(out, SessionIdentified)
    assert ident.initiator_name == INAME


def test_discovery_session_type_only_in_a_later_pdu() -> None:
    keys = (("InitiatorName", INAME), ("SessionType", "Discovery"))
    text = encode_keys(keys)
    c = Capture()
    c.opened()
    c.login(text, [at(text, b"Discovery", 4)], encode_keys((("TargetPortalGroupTag", "1"),)), ())
    _, out = c.run()
    assert session(out).session_type == "Discovery"


def test_session_reinstatement_found_from_names_in_a_later_pdu() -> None:
    # §6.3.5: a leading login with the InitiatorName, ISID and TargetName of a live session reinstates it,
    # also when those names arrive in a continuation PDU.
    tr = SessionTracker()
    a = Capture("10.0.0.1:40000->10.0.0.2:3260")
    a.opened()
    a.login(LOGIN_TEXT_I, (), LOGIN_TEXT_T, ())
    a.feed(tr)
    bb = Capture("10.0.0.1:40001->10.0.0.2:3260")
    bb.frame, bb.ts = a.frame + 10, a.ts + 10 * MS
    bb.opened()
    keys = (("SessionType", "Normal"), ("InitiatorName", INAME), ("TargetName", TNAME))
    text = encode_keys(keys)
    bb.login(text, [at(text, b"InitiatorName", 2), at(text, b"TargetName=iqn", 14)], LOGIN_TEXT_T, (),
             tsih_assigned=0x13)
    (re,) = of(bb.feed(tr), Reinstatement)
    assert re.kind == "session" and re.outcome == "succeeded"


def test_target_answers_a_c_bit_login_request_with_keys() -> None:
    # tgtd: it parses each Login Request alone and answers the first piece with TargetPortalGroupTag=1.
    c = Capture()
    c.opened()
    c.login(LOGIN_TEXT_I, SPLITS_I["mid_value"], LOGIN_TEXT_T, (), answer_t=b"TargetPortalGroupTag=1\0")
    _, out = c.run()
    (d,) = deviations(out)
    assert (d.kind, d.side, d.rfc) == ("text_continuation_answer_not_empty", "target", "§6.2")
    assert session(out).initiator_name == INAME


def test_initiator_answers_a_c_bit_login_response_with_keys() -> None:
    c = Capture()
    c.opened()
    c.login(LOGIN_TEXT_I, (), LOGIN_TEXT_T, SPLITS_T["mid_key"], answer_i=b"X-com.example.k=1\0")
    _, out = c.run()
    assert [(d.kind, d.side) for d in deviations(out)] == [("text_continuation_answer_not_empty", "initiator")]


def test_missing_answer_is_not_taken_from_a_later_pdu() -> None:
    # The empty answer to the first piece is not in the capture; the target's final, non-empty Login
    # Response answers the last piece (C=0), not the C=1 one.
    c = Capture()
    c.opened()
    k = at(LOGIN_TEXT_I, b"MaxBurstLength", 4)
    c.add(b.login_request(data=LOGIN_TEXT_I[:k], cont=True, transit=False, csg=1, nsg=3, itt=1, cmdsn=1), I2T)
    c.add(b.login_request(data=LOGIN_TEXT_I[k:], transit=True, csg=1, nsg=3, itt=1, cmdsn=1), I2T)
    c.add(b.login_response(data=LOGIN_TEXT_T, transit=True, csg=1, nsg=3, tsih=0x12, itt=1,
                           statsn=c.take_statsn(), **c.window()), T2I)
    _, out = c.run()
    assert deviations(out) == [] and negotiated(out) == BASELINE


def test_c_and_t_both_set() -> None:
    c = Capture()
    c.opened()
    text = LOGIN_TEXT_I
    k = at(text, b"MaxBurstLength", 4)
    c.add(b.login_request(data=text[:k], cont=True, transit=True, csg=1, nsg=3, itt=1, cmdsn=1), I2T)
    c.add(b.login_response(data=b"", transit=False, csg=1, nsg=3, itt=1, statsn=c.take_statsn()), T2I)
    c.add(b.login_request(data=text[k:], transit=True, csg=1, nsg=3, itt=1, cmdsn=1), I2T)
    c.add(b.login_response(data=LOGIN_TEXT_T, transit=True, csg=1, nsg=3, tsih=0x12, itt=1,
                           statsn=c.take_statsn(), **c.window()), T2I)
    _, out = c.run()
    assert [(d.kind, d.side, d.rfc) for d in deviations(out)] == [("text_continue_with_final", "initiator", "§11.12")]
    assert negotiated(out) == BASELINE  # the text is still joined


def test_login_rejected_in_the_middle_of_a_series() -> None:
    # tgtd looks for InitiatorName in the first Login Request only and rejects the login (0x0207).
    keys = (("SessionType", "Discovery"), ("InitiatorName", INAME))
    text = encode_keys(keys)
    c = Capture()
    c.opened()
    c.add(b.login_request(data=text[:at(text, b"iqn.2016", 4)], cont=True, transit=False, csg=0, nsg=1, itt=1), I2T)
    c.add(b.login_response(transit=False, csg=0, nsg=0, tsih=0, itt=1, status_class=2, status_detail=7), T2I)
    _, out = c.run()
    (d,) = deviations(out)
    assert (d.kind, d.side, d.start_frame) == ("text_continuation_abandoned", "target", 2)
    assert session(out).initiator_name is None  # never sent whole


# =========================================================================== text phase


def _logged_in() -> Capture:
    c = Capture()
    c.opened()
    c.login(LOGIN_TEXT_I, (), LOGIN_TEXT_T, ())
    return c


SENDTARGETS_TEXT = encode_keys(SENDTARGETS_REPLY)
SPLITS_REPLY: dict[str, list[int]] = {
    "mid_key": [at(SENDTARGETS_TEXT, b"TargetAddress", 6)],
    "mid_value": [at(SENDTARGETS_TEXT, b"lun-group-02", 5)],
    "before_eq": [at(SENDTARGETS_TEXT, b"=iqn.2016-04.com.example:storage.lun-group-03")],
    "after_eq": [at(SENDTARGETS_TEXT, b"=iqn.2016-04.com.example:storage.lun-group-03", 1)],
    "before_nul": [at(SENDTARGETS_TEXT, b"lun-group-04\0", 12)],
    "three_pdus": [at(SENDTARGETS_TEXT, b"lun-group-01", 3), at(SENDTARGETS_TEXT, b"lun-group-04", 6)],
}


@pytest.mark.parametrize("split", SPLITS_REPLY)
def test_sendtargets_reply_split(split: str) -> None:
    c = _logged_in()
    c.text(encode_keys((("SendTargets", "All"),)), (), SENDTARGETS_TEXT, SPLITS_REPLY[split])
    _, out = c.run()
    assert session(out).discovered_targets == TARGETS
    assert deviations(out) == [] and of(out, TrackerError) == []


@pytest.mark.parametrize("where", [b"SendTar", b"SendTargets", b"SendTargets=", b"SendTargets=A",
                                   b"SendTargets=All"])
def test_text_request_split(where: bytes) -> None:
    request = encode_keys((("SendTargets", "All"),))
    c = _logged_in()
    c.text(request, [len(where)], SENDTARGETS_TEXT, SPLITS_REPLY["three_pdus"])
    _, out = c.run()
    assert session(out).discovered_targets == TARGETS
    assert deviations(out) == []
    # the initiator's joined text, not a fragment, was offered: no NotUnderstood-style issue for "SendTar"
    assert not [i for i in of(out, NegotiationIssue) if i.key.startswith("Send")]


def test_ffp_max_recv_data_segment_length_renegotiated_in_split_text() -> None:
    # §13.12: MaxRecvDataSegmentLength may be declared again in FFP (Text); both sides split their text.
    req = encode_keys((("MaxRecvDataSegmentLength", "16384"), ("X-com.example.note", "n" * 30)))
    rsp = encode_keys((("X-com.example.note", "NotUnderstood"), ("MaxRecvDataSegmentLength", "32768")))
    c = _logged_in()
    c.text(req, [at(req, b"16384", 2)], rsp, [at(rsp, b"MaxRecvDataSegment", 3), at(rsp, b"32768", 1)])
    _, out = c.run()
    params = of(out, ConnectionParams)
    assert [(p.max_recv_dsl_initiator, p.max_recv_dsl_target) for p in params] == [(262144, 65536), (16384, 32768)]
    assert deviations(out) == []


def test_tgtd_style_reply_cut_with_f0_and_no_c_bit() -> None:
    # tgtd 1.0.85 cuts a SendTargets reply at MaxRecvDataSegmentLength anywhere and continues with F=0 and a
    # TTT, never with C=1 (RFC 7143 §6.1 allows a split pair only with C=1): joined, and reported.
    c = _logged_in()
    c.add(b.text_request(keys=[("SendTargets", "All")], itt=0x40, cmdsn=c.cmdsn, expstatsn=c.statsn), I2T)
    c.cmdsn += 1
    pieces = cut(SENDTARGETS_TEXT, [100, 200, 300])
    for k, piece in enumerate(pieces):
        last = k == len(pieces) - 1
        c.add(b.text_response(data=piece, final=last, itt=0x40, ttt=b.RESERVED if last else 1,
                              statsn=c.take_statsn(), **c.window()), T2I)
        if not last:
            c.add(b.text_request(data=b"", itt=0x40, ttt=1, cmdsn=c.cmdsn, expstatsn=c.statsn), I2T)
            c.cmdsn += 1
    _, out = c.run()
    assert session(out).discovered_targets == TARGETS
    devs = deviations(out)
    assert {(d.kind, d.side, d.rfc) for d in devs} == {("text_split_without_continue", "target", "§6.1")}
    assert len(devs) == sum(1 for p in pieces[:-1] if not p.endswith(b"\0"))


def test_target_ends_the_exchange_while_the_request_continues() -> None:
    # tgtd answers a C=1 Text Request with an empty final (F=1) response: the request text is abandoned.
    c = _logged_in()
    c.add(b.text_request(data=b"SendTar", cont=True, final=False, itt=0x41, cmdsn=c.cmdsn, expstatsn=c.statsn), I2T)
    c.cmdsn += 1
    c.add(b.text_response(data=b"", final=True, itt=0x41, statsn=c.take_statsn(), **c.window()), T2I)
    _, out = c.run()
    (d,) = deviations(out)
    assert (d.kind, d.side, d.itt) == ("text_continuation_abandoned", "target", 0x41)
    assert session(out).discovered_targets == ()


def test_new_exchange_while_the_reply_still_continues() -> None:
    c = _logged_in()
    c.add(b.text_request(keys=[("SendTargets", "All")], itt=0x42, cmdsn=c.cmdsn, expstatsn=c.statsn), I2T)
    c.cmdsn += 1
    c.add(b.text_response(data=SENDTARGETS_TEXT[:50], cont=True, final=False, itt=0x42, ttt=TTT,
                          statsn=c.take_statsn(), **c.window()), T2I)
    c.add(b.text_request(keys=[("SendTargets", "All")], itt=0x43, cmdsn=c.cmdsn, expstatsn=c.statsn), I2T)
    c.cmdsn += 1
    c.add(b.text_response(data=SENDTARGETS_TEXT, itt=0x43, statsn=c.take_statsn(), **c.window()), T2I)
    _, out = c.run()
    assert session(out).discovered_targets == TARGETS
    (d,) = deviations(out)
    assert (d.kind, d.side, d.itt) == ("text_continuation_abandoned", "initiator", 0x42)  # not an "answer"


# =========================================================================== property: any split, same result

_KEY = st.sampled_from(["MaxBurstLength", "FirstBurstLength", "DefaultTime2Wait", "DefaultTime2Retain",
                        "MaxOutstandingR2T", "ImmediateData", "InitialR2T", "X-com.example.v"])
_VAL = st.one_of(st.integers(0, 1 << 20).map(str), st.sampled_from(["Yes", "No"]),
                 st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_characters="\0"),
                         max_size=40))


def _cuts(text_len: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(1, max(1, text_len - 1)), max_size=3, unique=True) if text_len > 1 else st.just([])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offers=st.lists(st.tuples(_KEY, _VAL), max_size=6, unique_by=lambda kv: kv[0]),
       answers=st.lists(st.tuples(_KEY, _VAL), max_size=6, unique_by=lambda kv: kv[0]),
       data=st.data())
def test_any_split_gives_the_same_keys_and_negotiation(offers: list[tuple[str, str]],
                                                       answers: list[tuple[str, str]], data: st.DataObject) -> None:
    keys_i = (("InitiatorName", INAME), ("TargetName", TNAME), *offers)
    keys_t = (("TargetPortalGroupTag", "3"), *answers)
    text_i, text_t = encode_keys(keys_i), encode_keys(keys_t)
    cuts_i = data.draw(_cuts(len(text_i)), "cuts_i")
    cuts_t = data.draw(_cuts(len(text_t)), "cuts_t")

    def run(ci: list[int], ct: list[int]) -> tuple[object, ...]:
        c = Capture()
        c.opened()
        c.login(text_i, ci, text_t, ct)
        _, out = c.run()
        assert not of(out, TrackerError) and not deviations(out)
        return negotiated(out)

    assert run(cuts_i, cuts_t) == run([], [])
    # and the joiner alone: the same pairs as parsing the whole text
    j = TextJoiner()
    pieces = cut(text_i, cuts_i)
    got = None
    for k, piece in enumerate(pieces):
        more = k < len(pieces) - 1
        got, _ = j.feed(piece, parse_keys(piece, continued=more), len(piece), more, k + 1, 1)
    assert got == parse_keys(text_i)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_split_of_a_sendtargets_reply_gives_the_same_targets(data: st.DataObject) -> None:
    cuts = data.draw(_cuts(len(SENDTARGETS_TEXT)), "cuts")
    negotiation = Negotiation()
    j = TextJoiner()
    pieces = cut(SENDTARGETS_TEXT, cuts)
    for k, piece in enumerate(pieces):
        more = k < len(pieces) - 1
        keys, _ = j.feed(piece, parse_keys(piece, continued=more), len(piece), more, k + 1, 1)
        if keys is not None:
            negotiation.feed("target", keys, ffp_text=True)
    assert tuple(negotiation.discovered_targets) == TARGETS
