"""Builders for state-layer tests: construct records directly, with a shared capture clock.

``Wire`` hands out frame numbers and timestamps; ``Nums`` holds a session's CmdSN stream;
``Flow`` builds the records of one TCP connection with sensible numbering defaults (the
target acknowledges everything sent so far and grants a window of 32).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from analyzer.records import (
    I2T,
    R2T,
    RESERVED_TAG,
    T2I,
    AsyncMessage,
    Cdb,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Record,
    Reject,
    ScsiCommand,
    ScsiResponse,
    Sense,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TcpClosed,
    TcpFin,
    TcpGap,
    TcpOpened,
    TcpRst,
    TextRequest,
    TextResponse,
)
from analyzer.state.events import (
    CleanupDeadline,
    CleanupEnded,
    ConnectionParams,
    Reinstatement,
    SequenceEvent,
    TaskRecord,
    Transition,
    Violation,
)
from analyzer.state.tracker import SessionTracker

MS = 1_000_000
S = 1_000_000_000
ISID = 0x400001370000
INAME = "iqn.2016-04.com.example:initiator"
TNAME = "iqn.2016-04.com.example:target"


@dataclass
class Wire:
    """The capture clock: every record gets the next frame and ts (+1 ms by default)."""

    frame: int = 0
    ts: int = 1_700_000_000 * S

    def next(self, dt_ns: int = MS) -> tuple[int, int]:
        self.frame += 1
        self.ts += dt_ns
        return self.frame, self.ts

    def advance(self, dt_ns: int) -> int:
        self.ts += dt_ns
        return self.ts


@dataclass
class Nums:
    """Session-wide command numbering."""

    cmdsn: int = 1
    window: int = 32


@dataclass
class Flow:
    wire: Wire
    nums: Nums = field(default_factory=Nums)
    conn: str = "10.0.0.1:40000->10.0.0.2:3260"
    statsn: int = 100
    itt: int = 0x10

    # ---- tcp
    def _n(self) -> tuple[int, int]:
        return self.wire.next()

    def opened(self, handshake: bool = True) -> TcpOpened:
        f, t = self._n()
        c, rest = self.conn.split("->")
        return TcpOpened(f, t, self.conn, c.rsplit(":", 1)[0], int(c.rsplit(":", 1)[1]),
                         rest.split("#")[0].rsplit(":", 1)[0], int(rest.split("#")[0].rsplit(":", 1)[1]), handshake)

    def fin(self, direction: str = I2T) -> TcpFin:
        f, t = self._n()
        return TcpFin(f, t, self.conn, direction)

    def rst(self, direction: str = I2T) -> TcpRst:
        f, t = self._n()
        return TcpRst(f, t, self.conn, direction)

    def closed(self, reason: str = "fin") -> TcpClosed:
        f, t = self._n()
        return TcpClosed(f, t, self.conn, reason)

    def gap(self, direction: str = T2I) -> TcpGap:
        f, t = self._n()
        return TcpGap(f, t, self.conn, direction, 0, 100)

    # ---- common
    def _req(self, opcode: int, itt: int, immediate: bool = False, dsl: int = 0, lun: int | None = 0,
             final: bool = True) -> dict[str, object]:
        f, t = self._n()
        return {"frame": f, "ts_ns": t, "conn": self.conn, "direction": I2T, "first_frame": f, "opcode": opcode,
                    "immediate": immediate, "final": final, "total_ahs_length": 0, "dsl": dsl, "lun": lun, "itt": itt, "ahs": (),
                    "header_digest": None, "data_digest": None}

    def _rsp(self, opcode: int, itt: int, dsl: int = 0, lun: int | None = 0, final: bool = True
             ) -> dict[str, object]:
        d = self._req(opcode, itt, False, dsl, lun, final)
        d["direction"] = T2I
        return d

    def _win(self) -> dict[str, int]:
        return {"expcmdsn": self.nums.cmdsn, "maxcmdsn": (self.nums.cmdsn + self.nums.window - 1) % (1 << 32)}

    def _take_cmdsn(self, immediate: bool, cmdsn: int | None) -> int:
        if cmdsn is not None:
            if not immediate:
                self.nums.cmdsn = (cmdsn + 1) % (1 << 32)
            return cmdsn
        v = self.nums.cmdsn
        if not immediate:
            self.nums.cmdsn = (v + 1) % (1 << 32)
        return v

    def _take_statsn(self, statsn: int | None, advance: bool = True) -> int:
        v = self.statsn if statsn is None else statsn
        if advance:
            self.statsn = (v + 1) % (1 << 32)
        return v

    def new_itt(self) -> int:
        self.itt += 1
        return self.itt

    # ---- login
    def login_req(self, keys: Iterable[tuple[str, str]] = (), *, isid: int = ISID, tsih: int = 0, cid: int = 0,
                  itt: int = 0x1, transit: bool = True, csg: int = 1, nsg: int = 3) -> LoginRequest:
        d = self._req(0x03, itt, immediate=True, lun=None, final=transit)
        return LoginRequest(**d, transit=transit, cont=False, csg=csg, nsg=nsg, version_max=0, version_min=0,  # type: ignore[arg-type]
                            isid=isid, tsih=tsih, cid=cid, cmdsn=self.nums.cmdsn, expstatsn=self.statsn,
                            keys=tuple(keys))

    def login_rsp(self, keys: Iterable[tuple[str, str]] = (), *, isid: int = ISID, tsih: int = 0, itt: int = 0x1,
                  transit: bool = True, csg: int = 1, nsg: int = 3, status_class: int = 0,
                  status_detail: int = 0, statsn: int | None = None) -> LoginResponse:
        d = self._rsp(0x23, itt, lun=None, final=transit)
        sn = self._take_statsn(statsn, advance=status_class == 0)
        return LoginResponse(**d, transit=transit, cont=False, csg=csg, nsg=nsg, version_max=0,  # type: ignore[arg-type]
                             version_active=0, isid=isid, tsih=tsih, statsn=sn, **self._win(),
                             status_class=status_class, status_detail=status_detail, keys=tuple(keys))

    # ---- scsi
    def scsi_cmd(self, itt: int | None = None, *, opcode: int = 0x28, read: bool = True, write: bool = False,
                 edtl: int = 4096, dsl: int = 0, immediate: bool = False, cmdsn: int | None = None,
                 lun: int = 0, lba: int = 0) -> ScsiCommand:
        itt = self.new_itt() if itt is None else itt
        d = self._req(0x01, itt, immediate, dsl, lun)
        name = {0x28: "READ(10)", 0x2A: "WRITE(10)", 0x00: "TEST UNIT READY"}.get(opcode, "OTHER")
        return ScsiCommand(**d, read=read, write=write, attr=1, edtl=edtl,  # type: ignore[arg-type]
                           cmdsn=self._take_cmdsn(immediate, cmdsn), expstatsn=self.statsn,
                           cdb=Cdb(opcode, name, lba, edtl // 512, None, bytes([opcode]) + bytes(9)),
                           bidi_read_edtl=None)

    def data_in(self, itt: int, *, datasn: int = 0, dsl: int = 4096, offset: int = 0, status: int | None = None,
                statsn: int | None = None, final: bool | None = None) -> DataIn:
        s_bit = status is not None
        d = self._rsp(0x25, itt, dsl, final=s_bit if final is None else final)
        return DataIn(**d, ack=False, overflow=False, underflow=False, status_present=s_bit,  # type: ignore[arg-type]
                      status=status, ttt=RESERVED_TAG,
                      statsn=self._take_statsn(statsn) if s_bit else None, **self._win(), datasn=datasn,
                      buffer_offset=offset, residual=0 if s_bit else None)

    def data_out(self, itt: int, *, ttt: int = RESERVED_TAG, datasn: int = 0, dsl: int = 4096, offset: int = 0,
                 final: bool = True) -> DataOut:
        d = self._req(0x05, itt, False, dsl, final=final)
        return DataOut(**d, ttt=ttt, expstatsn=self.statsn, datasn=datasn, buffer_offset=offset)  # type: ignore[arg-type]

    def r2t(self, itt: int, *, ttt: int = 0x100, r2tsn: int = 0, offset: int = 0, length: int = 4096) -> R2T:
        d = self._rsp(0x31, itt)
        return R2T(**d, ttt=ttt, statsn=self._take_statsn(None, advance=False), **self._win(),  # type: ignore[arg-type]
                   r2tsn=r2tsn, buffer_offset=offset, desired_length=length)

    def scsi_rsp(self, itt: int, *, status: int = 0, response: int = 0, sense: Sense | None = None,
                 expdatasn: int = 0, statsn: int | None = None, residual: int = 0,
                 underflow: bool = False) -> ScsiResponse:
        d = self._rsp(0x21, itt, dsl=0 if sense is None else 20, lun=None)
        return ScsiResponse(**d, bidi_overflow=False, bidi_underflow=False, overflow=False,  # type: ignore[arg-type]
                            underflow=underflow, response=response, status=status, snack_tag=0,
                            statsn=self._take_statsn(statsn), **self._win(), expdatasn=expdatasn, bidi_residual=0,
                            residual=residual, sense=sense)

    # ---- logout / async / misc
    def logout_req(self, *, reason: int = 0, cid: int = 0, itt: int | None = None,
                   immediate: bool = True) -> LogoutRequest:
        itt = self.new_itt() if itt is None else itt
        d = self._req(0x06, itt, immediate, lun=None)
        return LogoutRequest(**d, reason=reason, cid=cid, cmdsn=self._take_cmdsn(immediate, None),  # type: ignore[arg-type]
                             expstatsn=self.statsn)

    def logout_rsp(self, itt: int, *, response: int = 0, time2wait: int = 0, time2retain: int = 0,
                   statsn: int | None = None) -> LogoutResponse:
        d = self._rsp(0x26, itt, lun=None)
        return LogoutResponse(**d, response=response, statsn=self._take_statsn(statsn), **self._win(),  # type: ignore[arg-type]
                              time2wait=time2wait, time2retain=time2retain)

    def async_msg(self, event: int, *, p1: int = 0, p2: int = 0, p3: int = 0,
                  statsn: int | None = None) -> AsyncMessage:
        d = self._rsp(0x32, RESERVED_TAG)
        return AsyncMessage(**d, statsn=self._take_statsn(statsn), **self._win(), async_event=event,  # type: ignore[arg-type]
                            async_vcode=0, param1=p1, param2=p2, param3=p3, sense=None)

    def nop_out(self, itt: int | None = None, *, ttt: int = RESERVED_TAG, immediate: bool = False) -> NopOut:
        itt = self.new_itt() if itt is None else itt
        imm = immediate or itt == RESERVED_TAG
        d = self._req(0x00, itt, imm)
        return NopOut(**d, ttt=ttt, cmdsn=self._take_cmdsn(imm, None), expstatsn=self.statsn)  # type: ignore[arg-type]

    def nop_in(self, itt: int = RESERVED_TAG, *, ttt: int = RESERVED_TAG, statsn: int | None = None) -> NopIn:
        d = self._rsp(0x20, itt)
        return NopIn(**d, ttt=ttt, statsn=self._take_statsn(statsn, advance=itt != RESERVED_TAG),  # type: ignore[arg-type]
                     **self._win())

    def tmf_req(self, function: int, *, ref: int = RESERVED_TAG, itt: int | None = None,
                lun: int = 0, immediate: bool = True) -> TaskMgmtRequest:
        itt = self.new_itt() if itt is None else itt
        d = self._req(0x02, itt, immediate, lun=lun)
        return TaskMgmtRequest(**d, function=function, ref_task_tag=ref,  # type: ignore[arg-type]
                               cmdsn=self._take_cmdsn(immediate, None), expstatsn=self.statsn, ref_cmdsn=0,
                               exp_datasn=0)

    def tmf_rsp(self, itt: int, *, response: int = 0) -> TaskMgmtResponse:
        d = self._rsp(0x22, itt, lun=None)
        return TaskMgmtResponse(**d, response=response, statsn=self._take_statsn(None), **self._win())  # type: ignore[arg-type]

    def text_req(self, keys: Iterable[tuple[str, str]], *, itt: int | None = None, ttt: int = RESERVED_TAG
                 ) -> TextRequest:
        itt = self.new_itt() if itt is None else itt
        d = self._req(0x04, itt, False, lun=None)
        return TextRequest(**d, cont=False, ttt=ttt, cmdsn=self._take_cmdsn(False, None),  # type: ignore[arg-type]
                           expstatsn=self.statsn, keys=tuple(keys))

    def text_rsp(self, itt: int, keys: Iterable[tuple[str, str]], *, final: bool = True) -> TextResponse:
        d = self._rsp(0x24, itt, lun=None, final=final)
        return TextResponse(**d, cont=False, ttt=RESERVED_TAG if final else 0x55,  # type: ignore[arg-type]
                            statsn=self._take_statsn(None), **self._win(), keys=tuple(keys))

    def reject(self, *, reason: int, rejected_opcode: int | None, rejected_itt: int | None) -> Reject:
        d = self._rsp(0x3F, RESERVED_TAG, dsl=48, lun=None)
        return Reject(**d, reason=reason, statsn=self._take_statsn(None), **self._win(),  # type: ignore[arg-type]
                      datasn_r2tsn=0, rejected_opcode=rejected_opcode, rejected_itt=rejected_itt,
                      rejected_header=bytes(48))


# ------------------------------------------------------------------ canned exchanges

LEADING_KEYS_I = (("InitiatorName", INAME), ("TargetName", TNAME), ("SessionType", "Normal"),
                  ("HeaderDigest", "CRC32C,None"), ("DataDigest", "None"), ("MaxRecvDataSegmentLength", "262144"),
                  ("MaxBurstLength", "262144"), ("FirstBurstLength", "65536"), ("InitialR2T", "Yes"),
                  ("ImmediateData", "Yes"), ("DefaultTime2Wait", "2"), ("DefaultTime2Retain", "20"),
                  ("ErrorRecoveryLevel", "0"), ("MaxConnections", "1"))
LEADING_KEYS_T = (("TargetPortalGroupTag", "1"), ("HeaderDigest", "CRC32C"), ("DataDigest", "None"),
                  ("MaxRecvDataSegmentLength", "65536"), ("MaxBurstLength", "131072"),
                  ("FirstBurstLength", "65536"), ("InitialR2T", "Yes"), ("ImmediateData", "Yes"),
                  ("DefaultTime2Wait", "2"), ("DefaultTime2Retain", "20"), ("ErrorRecoveryLevel", "0"),
                  ("MaxConnections", "1"))


def login(flow: Flow, *, tsih_assigned: int = 0x12, tsih: int = 0, cid: int = 0, isid: int = ISID,
          keys_i: Iterable[tuple[str, str]] = LEADING_KEYS_I,
          keys_t: Iterable[tuple[str, str]] = LEADING_KEYS_T, itt: int = 0x1) -> list[Record]:
    """A two-PDU login: security stage skipped (CSG=1 -> NSG=3)."""
    return [flow.login_req(keys_i, isid=isid, tsih=tsih, cid=cid, itt=itt),
            flow.login_rsp(keys_t, isid=isid, tsih=tsih_assigned, itt=itt)]


def run(tracker: SessionTracker, records: Iterable[Record]) -> list[Record]:
    out: list[Record] = []
    for r in records:
        out.extend(tracker.feed(r))
    return out


def transitions(out: Iterable[Record], machine: str | None = None, side: str | None = None,
                conn: str | None = None) -> list[Transition]:
    return [r for r in out if isinstance(r, Transition) and (machine is None or r.machine == machine)
            and (side is None or r.side == side) and (conn is None or r.conn == conn)]


def labels(out: Iterable[Record], machine: str | None = None, side: str | None = None,
           conn: str | None = None) -> list[str | None]:
    return [t.label for t in transitions(out, machine, side, conn)]


def of(out: Iterable[Record], cls: type) -> list:  # type: ignore[type-arg]
    return [r for r in out if isinstance(r, cls)]


def violations(out: Iterable[Record]) -> list[Violation]:
    return of(out, Violation)


def seq_kinds(out: Iterable[Record]) -> list[str]:
    return [r.kind for r in of(out, SequenceEvent)]


__all__ = [
    "I2T",
    "INAME",
    "ISID",
    "MS",
    "RESERVED_TAG",
    "T2I",
    "TNAME",
    "CleanupDeadline",
    "CleanupEnded",
    "ConnectionParams",
    "Flow",
    "Nums",
    "Reinstatement",
    "S",
    "SequenceEvent",
    "TaskRecord",
    "Transition",
    "Violation",
    "Wire",
    "labels",
    "login",
    "of",
    "run",
    "seq_kinds",
    "transitions",
    "violations",
]
