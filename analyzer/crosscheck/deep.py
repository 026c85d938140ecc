"""Field-by-field comparison with Wireshark's full dissection (``crosscheck --deep``).

The plain crosscheck (``analyzer.crosscheck``) checks that both decoders find the same PDUs
with the same opcode, ITT, CmdSN, StatSN and DataSegmentLength. The deep check goes through
every field both decoders expose for a PDU: the opcode-specific header fields of RFC 7143 §11,
the login/text key=value pairs (§6), the CDB fields (operation code, LBA, transfer length),
SCSI status, sense key/ASC/ASCQ and residual counts.

PDUs are paired per frame by opcode and ITT, in order (both decoders attribute a PDU to the
frame that carries its last byte). A field is compared only when both sides have a value for
it: Wireshark leaves out fields it did not dissect, and we leave out fields the RFC marks
reserved for the PDU at hand (for example StatSN in a Data-In without the S bit, §11.7.4).
PDUs only one side has are the plain crosscheck's business and are counted, not compared.

Values are compared as integers where Wireshark shows a number (``0x03``, ``442``, ``1``) or a
byte string (``80:19:23:16:00:00`` for an ISID); key=value pairs as the exact strings of a PDU
that neither is continued (C=1) nor continues one (a continued PDU ends in a fragment and the next
one starts with the rest, which both sides show differently, RFC 7143 §11.10.1).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from analyzer.capture.wireshark import Fields, WiresharkPdu
from analyzer.records import (
    R2T,
    AsyncMessage,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    Snack,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextRequest,
    TextResponse,
    UnknownPdu,
)

#: Our value of a field for one PDU (None: not applicable here).
Getter = Callable[[Pdu], object]


def _attr(name: str) -> Getter:
    return lambda p: getattr(p, name, None)


#: Fields every PDU has: (label, Wireshark field, our value).
COMMON_FIELDS: tuple[tuple[str, str, Getter], ...] = (
    ("opcode", "opcode", _attr("opcode")),
    ("itt", "initiatortasktag", _attr("itt")),
    ("dsl", "datasegmentlength", _attr("dsl")),
    ("total_ahs_length", "totalahslength", _attr("total_ahs_length")),
)

_REQ_SN = (("cmdsn", "cmdsn", _attr("cmdsn")), ("expstatsn", "expstatsn", _attr("expstatsn")))
_RSP_SN = (("statsn", "statsn", _attr("statsn")), ("expcmdsn", "expcmdsn", _attr("expcmdsn")),
           ("maxcmdsn", "maxcmdsn", _attr("maxcmdsn")))
_IMMEDIATE = (("immediate", "i", _attr("immediate")),)
_TTT = (("ttt", "targettransfertag", _attr("ttt")),)


def _login_status(p: Pdu) -> object:
    if isinstance(p, LoginResponse):
        return (p.status_class << 8) | p.status_detail
    return None


#: Opcode-specific fields (RFC 7143 §11), per record type.
TYPE_FIELDS: dict[type[Pdu], tuple[tuple[str, str, Getter], ...]] = {
    NopOut: _IMMEDIATE + _TTT + _REQ_SN,
    ScsiCommand: _IMMEDIATE + _REQ_SN + (
        ("edtl", "scsicommand_expecteddatatransferlength", _attr("edtl")),
        ("lun", "scsi_lun", _attr("lun")),
    ),
    TaskMgmtRequest: _IMMEDIATE + _REQ_SN + (
        ("function", "taskmanfun_function", _attr("function")),
        ("ref_task_tag", "taskmanfun_referencedtasktag", _attr("ref_task_tag")),
        ("ref_cmdsn", "refcmdsn", _attr("ref_cmdsn")),
        ("exp_datasn", "expdatasn", _attr("exp_datasn")),
        ("lun", "scsi_lun", _attr("lun")),
    ),
    LoginRequest: _REQ_SN + (
        ("transit", "login_t", _attr("transit")),
        ("cont", "login_c", _attr("cont")),
        ("csg", "login_csg", _attr("csg")),
        ("nsg", "login_nsg", _attr("nsg")),
        ("version_max", "versionmax", _attr("version_max")),
        ("version_min", "versionmin", _attr("version_min")),
        ("isid", "isid", _attr("isid")),
        ("tsih", "tsih", _attr("tsih")),
        ("cid", "cid", _attr("cid")),
    ),
    TextRequest: _IMMEDIATE + _TTT + _REQ_SN + (
        ("final", "text_f", _attr("final")),
        ("cont", "text_c", _attr("cont")),
    ),
    DataOut: _TTT + (
        ("expstatsn", "expstatsn", _attr("expstatsn")),
        ("datasn", "datasn", _attr("datasn")),
        ("buffer_offset", "bufferoffset", _attr("buffer_offset")),
        ("final", "scsidata_f", _attr("final")),
    ),
    LogoutRequest: _IMMEDIATE + _REQ_SN + (
        ("reason", "logout_reason", _attr("reason")),
        ("cid", "cid", _attr("cid")),
    ),
    Snack: (
        ("snack_type", "snack_type", _attr("snack_type")),
        ("begrun", "snack_begrun", _attr("begrun")),
        ("runlength", "snack_runlength", _attr("runlength")),
        ("expstatsn", "expstatsn", _attr("expstatsn")),
    ),
    NopIn: _TTT + _RSP_SN,
    ScsiResponse: _RSP_SN + (
        ("response", "scsiresponse_response", _attr("response")),
        ("status", "scsiresponse_status", _attr("status")),
        ("expdatasn", "expdatasn", _attr("expdatasn")),
        ("residual", "scsiresponse_residualcount", _attr("residual")),
        ("bidi_residual", "scsiresponse_bidireadresidualcount", _attr("bidi_residual")),
    ),
    TaskMgmtResponse: _RSP_SN + (("response", "taskmanfun_response", _attr("response")),),
    LoginResponse: _RSP_SN + (
        ("transit", "login_t", _attr("transit")),
        ("cont", "login_c", _attr("cont")),
        ("csg", "login_csg", _attr("csg")),
        ("nsg", "login_nsg", _attr("nsg")),
        ("version_max", "versionmax", _attr("version_max")),
        ("version_active", "versionactive", _attr("version_active")),
        ("isid", "isid", _attr("isid")),
        ("tsih", "tsih", _attr("tsih")),
        ("status", "login_status", _login_status),
    ),
    TextResponse: _TTT + _RSP_SN + (
        ("final", "text_f", _attr("final")),
        ("cont", "text_c", _attr("cont")),
    ),
    DataIn: _TTT + _RSP_SN + (
        ("datasn", "datasn", _attr("datasn")),
        ("buffer_offset", "bufferoffset", _attr("buffer_offset")),
        ("final", "scsidata_f", _attr("final")),
        ("ack", "scsidata_a", _attr("ack")),
        ("status_present", "scsidata_s", _attr("status_present")),
        ("status", "scsiresponse_status", _attr("status")),
        ("residual", "scsidata_readresidualcount", _attr("residual")),
    ),
    LogoutResponse: _RSP_SN + (
        ("response", "logout_response", _attr("response")),
        ("time2wait", "time2wait", _attr("time2wait")),
        ("time2retain", "time2retain", _attr("time2retain")),
    ),
    R2T: _TTT + _RSP_SN + (
        ("r2tsn", "r2tsn", _attr("r2tsn")),
        ("buffer_offset", "bufferoffset", _attr("buffer_offset")),
        ("desired_length", "desireddatalength", _attr("desired_length")),
    ),
    AsyncMessage: _RSP_SN + (
        ("async_event", "asyncevent", _attr("async_event")),
        ("async_vcode", "eventvendorcode", _attr("async_vcode")),
        ("param1", "parameter1", _attr("param1")),
        ("param2", "parameter2", _attr("param2")),
        ("param3", "parameter3", _attr("param3")),
    ),
    Reject: _RSP_SN + (("reason", "reject_reason", _attr("reason")),),
}

#: Wireshark's CDB operation-code fields, one per SCSI command set (SBC, SPC, MMC, SSC, SMC, OSD).
_CDB_OPCODE_RE = re.compile(r"^scsi_(?:sbc|spc|mmc|ssc|smc|osd)_opcode$")
_CDB_LBA_RE = re.compile(r"^scsi_sbc_(?:rdwr\d+_lba|lba\d*)$")
_CDB_XFERLEN_RE = re.compile(r"^scsi_sbc_rdwr\d+_xferlen$")


@dataclass(frozen=True, slots=True)
class DeepDifference:
    frame: int
    opcode: int
    itt: int
    field: str  #: our label (Wireshark's field name in ``wireshark_field``)
    wireshark_field: str
    ours: str
    theirs: str


@dataclass
class DeepResult:
    """Outcome of a deep comparison."""

    wireshark_pdus: int = 0
    paired: int = 0
    #: PDUs of Wireshark's (in the compared frames) that no PDU of ours paired with, and the other way
    unpaired_theirs: int = 0
    unpaired_ours: int = 0
    compared: Counter[str] = field(default_factory=Counter)  #: field label -> comparisons made
    differences: list[DeepDifference] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return not self.differences

    @property
    def fields_compared(self) -> int:
        return sum(self.compared.values())


def _as_int(text: str) -> int | None:
    t = text.strip()
    if ":" in t:  # a byte string such as an ISID or an LBA shown as bytes
        try:
            return int(t.replace(":", ""), 16)
        except ValueError:
            return None
    if t in ("True", "False"):
        return int(t == "True")
    try:
        return int(t, 0)
    except ValueError:
        return None


def _ours_int(v: object) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    return None


def _first(fields: Fields, name: str) -> str | None:
    vals = fields.get(name)
    return vals[0] if vals else None


def _scsi_values(p: Pdu, scsi: Fields) -> Iterable[tuple[str, str, object, str]]:
    """(label, Wireshark field, our value, their value) for the SCSI layer of a one-PDU frame."""
    if isinstance(p, ScsiCommand):
        for name, vals in scsi.items():
            if _CDB_OPCODE_RE.match(name):
                yield "cdb.opcode", name, p.cdb.opcode, vals[0]
            elif _CDB_LBA_RE.match(name) and p.cdb.lba is not None:
                yield "cdb.lba", name, p.cdb.lba, vals[0]
            elif _CDB_XFERLEN_RE.match(name) and p.cdb.transfer_length is not None:
                yield "cdb.transfer_length", name, p.cdb.transfer_length, vals[0]
    sense = getattr(p, "sense", None)
    if sense is not None:
        for label, name, ours in (("sense.key", "sns_key", sense.sense_key), ("sense.asc", "sns_asc", sense.asc),
                                  ("sense.ascq", "sns_ascq", sense.ascq)):
            theirs = _first(scsi, name)
            if theirs is not None:
                yield label, name, ours, theirs


def _compare_pdu(p: Pdu, w: WiresharkPdu, res: DeepResult) -> None:
    def diff(label: str, wfield: str, ours: object, theirs: str) -> None:
        res.differences.append(DeepDifference(w.frame, p.opcode, p.itt, label, wfield, str(ours), theirs))

    for label, wfield, get in COMMON_FIELDS + TYPE_FIELDS.get(type(p), ()):
        theirs = _first(w.iscsi, wfield)
        ours = _ours_int(get(p))
        if theirs is None or ours is None:
            continue
        res.compared[label] += 1
        if _as_int(theirs) != ours:
            diff(label, wfield, ours, theirs)
    keys = getattr(p, "keys", None)
    # A continued PDU (C=1) ends in a fragment, and the PDU after it starts with one (a pair with
    # no key name on our side): both decoders show fragments their own way, so neither is compared.
    if (keys is not None and not getattr(p, "cont", False) and "keyvalue" in w.iscsi
            and not any(k == "" for k, _ in keys)):
        ours_kv = tuple(f"{k}={v}" for k, v in keys)
        theirs_kv = tuple(v for v in w.iscsi["keyvalue"] if v)
        res.compared["keys"] += 1
        if ours_kv != theirs_kv:
            diff("keys", "keyvalue", " ".join(ours_kv), " ".join(theirs_kv))
    if w.scsi is not None:
        for label, wfield, ours, theirs in _scsi_values(p, w.scsi):
            oi = _ours_int(ours)
            if oi is None:
                continue
            res.compared[label] += 1
            if _as_int(theirs) != oi:
                diff(label, wfield, oi, theirs)


def deep_compare(records: Iterable[object], theirs: list[WiresharkPdu]) -> DeepResult:
    """Pair our PDUs with Wireshark's per frame (opcode, ITT, in order) and compare every field."""
    res = DeepResult(wireshark_pdus=len(theirs))
    if not theirs:
        return res
    last_frame = theirs[-1].frame
    by_frame: dict[int, list[WiresharkPdu]] = defaultdict(list)
    for w in theirs:
        by_frame[w.frame].append(w)
    ours_by_frame: dict[int, list[Pdu]] = defaultdict(list)
    for r in records:
        if isinstance(r, Pdu) and not isinstance(r, UnknownPdu) and r.frame <= last_frame:
            ours_by_frame[r.frame].append(r)
    for frame in sorted(set(by_frame) | set(ours_by_frame)):
        pending = list(by_frame.get(frame, ()))
        for p in ours_by_frame.get(frame, ()):
            match = next((w for w in pending
                          if _as_int(_first(w.iscsi, "opcode") or "") == p.opcode
                          and _as_int(_first(w.iscsi, "initiatortasktag") or "") == p.itt), None)
            if match is None:
                res.unpaired_ours += 1
                continue
            pending.remove(match)
            res.paired += 1
            _compare_pdu(p, match, res)
        res.unpaired_theirs += len(pending)
    return res
