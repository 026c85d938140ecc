"""What a capture really contains, read back with tshark (and the file header for the link type).

The lab never writes ground truth it has not seen: every scenario's `expect` block in the manifest is
derived from `CaptureFacts`, which come from tshark's iSCSI dissector, not from what the scenario intended.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzer.lab.errors import LabError
from analyzer.lab.procs import run

#: tshark aggregator for fields that occur several times in a frame (several PDUs, several keys).
_AGG = "\x1f"

#: iSCSI opcodes (RFC 7143 §11.2.1.2) as tshark prints them, by name.
OPCODES: dict[int, str] = {
    0x00: "NOP-Out", 0x01: "SCSI Command", 0x02: "Task Management Request", 0x03: "Login Request",
    0x04: "Text Request", 0x05: "SCSI Data-Out", 0x06: "Logout Request", 0x10: "SNACK Request",
    0x20: "NOP-In", 0x21: "SCSI Response", 0x22: "Task Management Response", 0x23: "Login Response",
    0x24: "Text Response", 0x25: "SCSI Data-In", 0x26: "Logout Response", 0x31: "R2T",
    0x32: "Asynchronous Message", 0x3F: "Reject",
}

#: Task management response codes (RFC 7143 §11.6.1).
TMF_RESPONSES: dict[int, str] = {
    0: "Function complete", 1: "Task does not exist", 2: "LUN does not exist", 3: "Task still allegiant",
    4: "Task allegiance reassignment not supported", 5: "Task management function not supported",
    6: "Function authorization failed", 255: "Function rejected",
}

#: Task management function codes (RFC 7143 §11.5.1).
TMF_FUNCTIONS: dict[int, str] = {
    1: "ABORT TASK", 2: "ABORT TASK SET", 3: "CLEAR ACA", 4: "CLEAR TASK SET", 5: "LOGICAL UNIT RESET",
    6: "TARGET WARM RESET", 7: "TARGET COLD RESET", 8: "TASK REASSIGN",
}

FIELDS: tuple[str, ...] = (
    "frame.number", "frame.time_epoch", "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.flags.syn",
    "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.reset", "iscsi.opcode", "iscsi.login.status",
    "iscsi.login.T", "iscsi.login.C", "iscsi.login.nsg", "iscsi.keyvalue", "iscsi.isid", "iscsi.tsih",
    "iscsi.datasegmentlength",
    "iscsi.taskmanfun.function", "iscsi.taskmanfun.response", "iscsi.logout.reason", "iscsi.logout.response",
    "iscsi.reject.reason", "iscsi.initiatortasktag", "iscsi.targettransfertag", "iscsi.headerdigest32", "iscsi.datadigest32", "iscsi.scsiresponse.status",
    "ip.version", "ipv6.version",
)

# Link-layer header types (tcpdump.org/linktypes.html).
LINKTYPE_NAMES: dict[int, str] = {1: "EN10MB", 113: "LINUX_SLL", 276: "LINUX_SLL2", 0: "NULL", 101: "RAW"}


def read_linktype(path: Path) -> tuple[str, int]:
    """The capture's format ("pcap"/"pcapng") and the link type of its first interface."""
    with open(path, "rb") as f:
        head = f.read(64)
    if len(head) < 24:
        raise LabError(f"{path}: too short to be a capture")
    magic = head[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return "pcap", struct.unpack_from("<I", head, 20)[0]
    if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return "pcap", struct.unpack_from(">I", head, 20)[0]
    if magic == b"\x0a\x0d\x0d\x0a":
        endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        shb_len = struct.unpack_from(endian + "I", head, 4)[0]
        with open(path, "rb") as f:
            f.seek(shb_len)
            idb = f.read(12)
        block_type, _, linktype = struct.unpack_from(endian + "IIH", idb, 0)
        if block_type != 1:
            raise LabError(f"{path}: first block after the SHB is not an IDB")
        return "pcapng", linktype
    raise LabError(f"{path}: not a pcap or pcapng file")


def tshark_rows(path: Path, fields: tuple[str, ...], display_filter: str | None = None,
                timeout: float = 120.0) -> list[dict[str, list[str]]]:
    """Run tshark over `path` and return one dict per frame: field -> list of occurrences."""
    argv = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
            "-E", f"aggregator={_AGG}", "-E", "header=n"]
    for name in fields:
        argv += ["-e", name]
    if display_filter:
        argv += ["-Y", display_filter]
    out = run(argv, timeout=timeout).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(fields) - len(cols))
        rows.append({name: [v for v in col.split(_AGG) if v != ""] for name, col in zip(fields, cols, strict=False)})
    return rows


def count_frames(path: Path, display_filter: str, timeout: float = 120.0) -> int:
    """How many frames of `path` match `display_filter`."""
    out = run(["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
              timeout=timeout).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def _int(value: str) -> int:
    return int(value, 16) if value.lower().startswith("0x") else int(value)


def _flag(row: dict[str, list[str]], name: str) -> bool:
    return any(v in ("1", "True") for v in row.get(name, []))


@dataclass
class SessionFacts:
    """One TCP connection to port 3260 and the iSCSI login/logout seen on it."""

    tcp_stream: int
    initiator_port: int
    ip_version: int
    t_syn: float | None = None
    session_type: str | None = None
    target: str | None = None
    initiator: str | None = None
    isid: str | None = None
    tsih: str | None = None
    auth_method: str | None = None
    login_statuses: list[str] = field(default_factory=list)
    login_ok: bool = False
    t_login: float | None = None
    header_digest: str | None = None
    data_digest: str | None = None
    t_logout_request: float | None = None
    logout_reason: int | None = None
    logout_response: int | None = None
    t_close: float | None = None
    closed_by: str | None = None  # "initiator" | "target"
    close_kind: str | None = None  # "fin" | "rst"
    pdus: Counter[str] = field(default_factory=Counter)

    @property
    def login_status(self) -> str | None:
        """Status of the last Login Response (`0x0000` on success)."""
        return self.login_statuses[-1] if self.login_statuses else None

    @property
    def ended_by(self) -> str:
        """How the connection ended, as observed: login_redirected (Status-Class 1, §11.13.5), login_failed,
        logout, target_dropped, initiator_closed, or capture_ended (still open when the capture stopped)."""
        if self.login_statuses and not self.login_ok:
            return "login_redirected" if (self.login_status or "").startswith("0x01") else "login_failed"
        if self.logout_response is not None:
            return "logout"
        if self.closed_by == "target":
            return "target_dropped"
        if self.closed_by == "initiator":
            return "initiator_closed"
        return "capture_ended"


@dataclass
class CaptureFacts:
    """Everything the lab checks and records about one capture."""

    path: Path
    file_format: str
    linktype: int
    frames: int
    t_first: float
    sessions: list[SessionFacts]
    pdus: Counter[str]
    tmf: list[dict[str, object]]
    nop_pings: list[dict[str, object]]
    rejects: list[dict[str, object]]
    check_conditions: int
    header_digest_pdus: int
    data_digest_pdus: int
    retransmissions: int
    out_of_order: int
    lost_segments: int

    @property
    def iscsi_pdus(self) -> int:
        """Total iSCSI PDUs tshark decoded."""
        return sum(self.pdus.values())

    @property
    def linktype_name(self) -> str:
        """e.g. EN10MB, LINUX_SLL, LINUX_SLL2."""
        return LINKTYPE_NAMES.get(self.linktype, str(self.linktype))

    def rel(self, t_epoch: float) -> float:
        """Seconds from the first frame."""
        return round(t_epoch - self.t_first, 3)


def collect_facts(path: Path, target_port: int = 3260) -> CaptureFacts:
    """Read `path` with tshark and build its `CaptureFacts`."""
    file_format, linktype = read_linktype(path)
    rows = tshark_rows(path, FIELDS)
    if not rows:
        raise LabError(f"{path}: tshark found no frames")
    t_first = float(rows[0]["frame.time_epoch"][0])
    sessions: dict[int, SessionFacts] = {}
    pdus: Counter[str] = Counter()
    tmf: list[dict[str, object]] = []
    pings: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    check_conditions = 0
    hd = dd = 0
    for row in rows:
        if not row["tcp.stream"]:
            continue
        stream = int(row["tcp.stream"][0])
        sport, dport = int(row["tcp.srcport"][0]), int(row["tcp.dstport"][0])
        from_target = sport == target_port
        t = float(row["frame.time_epoch"][0])
        s = sessions.get(stream)
        if s is None:
            s = SessionFacts(stream, dport if from_target else sport, 6 if row["ipv6.version"] else 4)
            sessions[stream] = s
        if _flag(row, "tcp.flags.syn") and not _flag(row, "tcp.flags.ack"):
            s.t_syn = t
        if (_flag(row, "tcp.flags.fin") or _flag(row, "tcp.flags.reset")) and s.closed_by is None:
            s.closed_by = "target" if from_target else "initiator"
            s.close_kind = "rst" if _flag(row, "tcp.flags.reset") else "fin"
            s.t_close = t
        opcodes = [_int(v) for v in row["iscsi.opcode"]]
        hd += len(row["iscsi.headerdigest32"])
        dd += len(row["iscsi.datadigest32"])
        items = row["iscsi.keyvalue"]
        if opcodes in ([0x03], [0x23]) and _flag(row, "iscsi.login.C") and items and row["iscsi.datasegmentlength"] \
                and sum(len(i.encode()) + 1 for i in items) > _int(row["iscsi.datasegmentlength"][0]):
            # §6.1: the text continues in the next PDU and tshark read its unterminated last item (a
            # fragment) on into the padding; an unterminated item with no padding after it is not shown
            items = items[:-1]
        keys = dict(kv.split("=", 1) for kv in items if "=" in kv)
        for op in opcodes:
            name = OPCODES.get(op, f"0x{op:02x}")
            pdus[name] += 1
            s.pdus[name] += 1
        if 0x03 in opcodes:
            s.session_type = keys.get("SessionType", s.session_type)
            s.target = keys.get("TargetName", s.target)
            s.initiator = keys.get("InitiatorName", s.initiator)
            if row["iscsi.isid"]:
                s.isid = row["iscsi.isid"][0]
        if 0x23 in opcodes:
            status = row["iscsi.login.status"][0] if row["iscsi.login.status"] else "0x0000"
            s.login_statuses.append(f"0x{_int(status):04x}")
            s.auth_method = keys.get("AuthMethod", s.auth_method)
            s.header_digest = keys.get("HeaderDigest", s.header_digest)
            s.data_digest = keys.get("DataDigest", s.data_digest)
            final = _flag(row, "iscsi.login.T") and row["iscsi.login.nsg"] and _int(row["iscsi.login.nsg"][0]) == 3
            if _int(status) == 0 and final:
                s.login_ok = True
                s.t_login = t
                if row["iscsi.tsih"]:
                    s.tsih = row["iscsi.tsih"][0]
        if 0x06 in opcodes:
            s.t_logout_request = t
            if row["iscsi.logout.reason"]:
                s.logout_reason = _int(row["iscsi.logout.reason"][0])
        if 0x26 in opcodes and row["iscsi.logout.response"]:
            s.logout_response = _int(row["iscsi.logout.response"][0])
        itts = row["iscsi.initiatortasktag"]
        functions = iter(row["iscsi.taskmanfun.function"])
        responses = iter(row["iscsi.taskmanfun.response"])
        for i, op in enumerate(opcodes):
            itt = itts[i] if i < len(itts) else None
            if op == 0x02:
                fn = _int(next(functions, "0"))
                tmf.append({"function": TMF_FUNCTIONS.get(fn, str(fn)), "itt": itt, "t": t, "tcp_stream": stream,
                            "response": None})
            elif op == 0x22:
                resp = _int(next(responses, "255"))
                req = next((x for x in reversed(tmf) if x["itt"] == itt and x["tcp_stream"] == stream), None)
                if req is not None:
                    req["response"] = TMF_RESPONSES.get(resp, str(resp))
        # Target NOP-In pings carry a real TTT (not 0xffffffff) and must be echoed by a NOP-Out (§11.18, §11.19).
        if opcodes == [0x20] and from_target and row["iscsi.targettransfertag"]:
            ttt = row["iscsi.targettransfertag"][0]
            if ttt.lower() != "0xffffffff":
                pings.append({"ttt": ttt, "t": t, "tcp_stream": stream, "answered": False})
        if opcodes == [0x00] and not from_target and row["iscsi.targettransfertag"]:
            ttt = row["iscsi.targettransfertag"][0]
            for ping in pings:
                if ping["ttt"] == ttt and ping["tcp_stream"] == stream:
                    ping["answered"] = True
        if 0x3F in opcodes:
            for reason in row["iscsi.reject.reason"]:
                rejects.append({"reason": f"0x{_int(reason):02x}", "t": t, "tcp_stream": stream})
        check_conditions += sum(1 for st in row["iscsi.scsiresponse.status"] if _int(st) == 0x02)
    facts = CaptureFacts(
        path=path, file_format=file_format, linktype=linktype, frames=len(rows), t_first=t_first,
        sessions=[sessions[k] for k in sorted(sessions)], pdus=pdus, tmf=tmf, nop_pings=pings, rejects=rejects,
        check_conditions=check_conditions, header_digest_pdus=hd, data_digest_pdus=dd,
        retransmissions=count_frames(path, "tcp.analysis.retransmission or tcp.analysis.fast_retransmission"),
        out_of_order=count_frames(path, "tcp.analysis.out_of_order"),
        lost_segments=count_frames(path, "tcp.analysis.lost_segment"),
    )
    for item in facts.tmf + facts.rejects + facts.nop_pings:
        item["t"] = facts.rel(float(item["t"]))  # type: ignore[arg-type]
    return facts


# ---------------------------------------------------------------------------------------------------------
# PDU-level facts for the scripted-initiator scenarios: every PDU (tshark JSON, so several PDUs in one frame
# stay separate), requests paired with their responses, sessions grouped by ISID+TSIH across connections.

#: Request opcode -> the response opcode that completes it (RFC 7143 §11). A SCSI Command is also
#: completed by a Data-In with the S bit (§11.7.1).
RESPONSE_OF: dict[int, int] = {0x00: 0x20, 0x01: 0x21, 0x02: 0x22, 0x03: 0x23, 0x04: 0x24, 0x06: 0x26}

#: Logout Request reasons (§11.14.1) and Logout Response codes (§11.15.1).
LOGOUT_REASONS: dict[int, str] = {0: "close the session", 1: "close the connection",
                                  2: "remove the connection for recovery"}
LOGOUT_RESPONSES: dict[int, str] = {0: "connection or session closed successfully", 1: "CID not found",
                                    2: "connection recovery is not supported", 3: "cleanup failed"}


@dataclass
class PduFacts:
    """One iSCSI PDU as tshark decoded it."""

    frame: int
    t: float  # epoch
    stream: int
    from_target: bool
    opcode: int
    fields: dict[str, object]

    def get(self, name: str) -> str | None:
        """A scalar field (first occurrence) or None."""
        value = self.fields.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        return value if isinstance(value, str) else None

    def num(self, name: str) -> int | None:
        """A numeric field (decimal or 0x-hex) or None."""
        value = self.get(name)
        return _int(value) if value not in (None, "") else None

    @property
    def name(self) -> str:
        """Opcode name as tshark prints it."""
        return OPCODES.get(self.opcode, f"0x{self.opcode:02x}")

    @property
    def itt(self) -> int | None:
        """Initiator Task Tag."""
        return self.num("iscsi.initiatortasktag")

    @property
    def immediate(self) -> bool:
        """I bit (requests only; Login is always immediate)."""
        return self.opcode == 0x03 or self.get("iscsi.I") in ("1", "True")


def _flatten(tree: dict[str, object], out: dict[str, object]) -> None:
    for key, value in tree.items():
        if isinstance(value, dict):
            _flatten(value, out)
        elif key.startswith(("iscsi.", "scsi.")):
            out.setdefault(key, value)


def collect_pdus(path: Path, target_port: int = 3260, timeout: float = 120.0) -> list[PduFacts]:
    """Every iSCSI PDU of `path`, in capture order (tshark `-T json`, one object per PDU)."""
    import json

    out = run(["tshark", "-n", "-r", str(path), "-Y", "iscsi", "-T", "json", "--no-duplicate-keys"],
              timeout=timeout).stdout
    pdus: list[PduFacts] = []
    for pkt in json.loads(out or "[]"):
        layers = pkt["_source"]["layers"]
        frame = layers["frame"]
        tcp = layers["tcp"]
        stream = int(tcp["tcp.stream"])
        from_target = int(tcp["tcp.srcport"]) == target_port
        items = layers["iscsi"] if isinstance(layers["iscsi"], list) else [layers["iscsi"]]
        for item in items:
            flat: dict[str, object] = {}
            _flatten(item, flat)
            if "iscsi.opcode" not in flat:
                continue
            pdus.append(PduFacts(int(frame["frame.number"]), float(frame["frame.time_epoch"]), stream,
                                 from_target, _int(str(flat["iscsi.opcode"])), flat))
    return pdus


def _sn_lt(a: int, b: int) -> bool:
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000


@dataclass
class ExchangeFacts:
    """Requests paired with responses, logouts, logins and sessions (ISID+TSIH) across connections."""

    pdus: list[PduFacts]
    tasks: list[dict[str, object]]
    logins: list[dict[str, object]]
    logouts: list[dict[str, object]]
    sessions: list[dict[str, object]]

    @property
    def unanswered(self) -> list[dict[str, object]]:
        """Tasks whose request got no response in the capture."""
        return [t for t in self.tasks if not t["answered"]]


def collect_exchanges(facts: CaptureFacts, target_port: int = 3260,
                      extra: list[PduFacts] | None = None) -> ExchangeFacts:
    """Pair every request of `facts.path` with its response and group connections into sessions.

    `extra`: PDUs tshark does not dissect but the capture holds (see `undissected_text_pdus`), merged in
    capture order so their requests count as answered and their command windows count."""
    pdus = collect_pdus(facts.path, target_port)
    if extra:
        pdus = sorted(pdus + extra, key=lambda q: q.frame)
    conns = {s.tcp_stream: s for s in facts.sessions}
    rel = facts.rel
    # Per stream: the session key (ISID, TSIH) once a login succeeded, for CmdSN-window bookkeeping.
    stream_session: dict[int, tuple[str, str]] = {}
    window: dict[tuple[str, str], tuple[int, int]] = {}
    pending: dict[tuple[int, int, int], list[dict[str, object]]] = {}
    tasks: list[dict[str, object]] = []
    logins: dict[int, dict[str, object]] = {}
    logouts: list[dict[str, object]] = []
    logout_sent: dict[int, int] = {}  # stream -> index (in `pdus`) of its first Logout Request
    for index, p in enumerate(pdus):
        if not p.from_target:
            if p.opcode == 0x03:
                login = logins.setdefault(p.stream, {
                    "tcp_stream": p.stream, "frame": p.frame, "t": rel(p.t),
                    "isid": (p.get("iscsi.isid") or "").replace(":", ""),
                    "tsih_requested": f"0x{p.num('iscsi.tsih') or 0:04x}", "cid": p.num("iscsi.cid"),
                    "statuses": [], "tsih": None, "ok": False})
                del login  # only the first request of the stream defines ISID/TSIH/CID
            if p.opcode == 0x06:
                logout_sent.setdefault(p.stream, index)
                logouts.append({"tcp_stream": p.stream, "frame": p.frame, "t": rel(p.t),
                                "reason": p.num("iscsi.logout.reason"),
                                "reason_name": LOGOUT_REASONS.get(p.num("iscsi.logout.reason") or 0, "?"),
                                "cid": p.num("iscsi.cid"), "itt": p.get("iscsi.initiatortasktag"),
                                "response": None, "response_name": None, "response_frame": None,
                                "response_t": None})
            if p.opcode not in RESPONSE_OF or p.itt is None or (p.opcode == 0x00 and p.itt == 0xFFFFFFFF):
                continue
            sess = stream_session.get(p.stream)
            cmdsn = p.num("iscsi.cmdsn")
            in_window: bool | None = None
            win = window.get(sess) if sess is not None else None
            if win is not None and cmdsn is not None and not p.immediate and p.opcode != 0x03:
                in_window = not _sn_lt(cmdsn, win[0]) and not _sn_lt(win[1], cmdsn)
            task: dict[str, object] = {
                "tcp_stream": p.stream, "frame": p.frame, "t": rel(p.t), "opcode": p.name,
                "itt": f"0x{p.itt:08x}", "cmdsn": cmdsn, "immediate": p.immediate,
                "window": list(win) if win is not None else None, "in_window": in_window,
                "after_logout_request": p.stream in logout_sent and index > logout_sent[p.stream]
                and p.opcode != 0x06,
                "answered": False, "response_frame": None, "response_t": None}
            if p.opcode == 0x02:
                task["tmf_function"] = TMF_FUNCTIONS.get(p.num("iscsi.taskmanfun.function") or 0)
                task["referenced_itt"] = p.get("iscsi.taskmanfun.referencedtasktag")
            if p.opcode == 0x04:
                task["keys"] = p.fields.get("iscsi.keyvalue")
            tasks.append(task)
            pending.setdefault((p.stream, p.itt, RESPONSE_OF[p.opcode]), []).append(task)
            continue
        # target -> initiator
        sess = stream_session.get(p.stream)
        exp, mx = p.num("iscsi.expcmdsn"), p.num("iscsi.maxcmdsn")
        if p.opcode == 0x23:
            login = logins.get(p.stream)
            status = p.num("iscsi.login.status") or 0
            if login is not None:
                login["statuses"].append(f"0x{status:04x}")  # type: ignore[union-attr]
                login["tsih"] = f"0x{p.num('iscsi.tsih') or 0:04x}"
                final = p.get("iscsi.login.T") == "1" and p.num("iscsi.login.nsg") == 3
                if status == 0 and final:
                    login["ok"] = True
                    login["t_ok"] = rel(p.t)
                    stream_session[p.stream] = (str(login["isid"]), str(login["tsih"]))
                    sess = stream_session[p.stream]
        if sess is not None and exp is not None and mx is not None and (p.opcode != 0x23 or
                                                                         (p.num("iscsi.login.status") or 0) == 0):
            old = window.get(sess)
            if old is None:
                window[sess] = (exp, mx)
            else:
                window[sess] = (exp if _sn_lt(old[0], exp) else old[0], mx if _sn_lt(old[1], mx) else old[1])
        if p.opcode == 0x26:
            for lo in logouts:
                if lo["tcp_stream"] == p.stream and lo["itt"] == p.get("iscsi.initiatortasktag") \
                        and lo["response"] is None:
                    resp = p.num("iscsi.logout.response")
                    lo.update(response=resp, response_name=LOGOUT_RESPONSES.get(resp or 0, "?"),
                              response_frame=p.frame, response_t=rel(p.t),
                              time2wait=p.num("iscsi.time2wait"), time2retain=p.num("iscsi.time2retain"))
                    break
        itt = p.itt
        if itt is None:
            continue
        completes = p.opcode if p.opcode != 0x25 else (0x21 if p.get("iscsi.scsidata.S") == "1" else None)
        if completes is None:
            continue
        queue = pending.get((p.stream, itt, completes))
        if queue:
            task = queue.pop(0)
            task.update(answered=True, response_frame=p.frame, response_t=rel(p.t), response=p.name)
            if p.opcode == 0x22:
                task["tmf_response"] = TMF_RESPONSES.get(p.num("iscsi.taskmanfun.response") or 0)
            if p.opcode in (0x21, 0x25):
                task["scsi_status"] = f"0x{p.num('iscsi.scsiresponse.status') or 0:02x}"
            if p.opcode == 0x23:
                task["login_status"] = f"0x{p.num('iscsi.login.status') or 0:04x}"
    for task in tasks:
        conn = conns.get(int(task["tcp_stream"]))  # type: ignore[call-overload]
        if not task["answered"] and conn is not None:
            task["connection_end"] = {"closed_by": conn.closed_by, "how": conn.close_kind,
                                      "t": rel(conn.t_close) if conn.t_close is not None else None}
    sessions: dict[tuple[str, str], dict[str, object]] = {}
    for stream, login in sorted(logins.items()):
        conn = conns.get(stream)
        entry = {"tcp_stream": stream, "cid": login["cid"], "tsih_requested": login["tsih_requested"],
                 "login_status": (login["statuses"] or [None])[-1],  # type: ignore[index]
                 "t_start": rel(conn.t_syn) if conn and conn.t_syn is not None else None,
                 "t_login": login.get("t_ok"),
                 "ended_by": conn.ended_by if conn else None,
                 "closed_by": conn.closed_by if conn else None, "close_kind": conn.close_kind if conn else None,
                 "t_end": rel(conn.t_close) if conn and conn.t_close is not None else None,
                 "logouts": [{k: lo[k] for k in ("frame", "t", "reason", "cid", "response", "response_t")}
                             for lo in logouts if lo["tcp_stream"] == stream]}
        key = (str(login["isid"]), str(login["tsih"]) if login["ok"] else f"failed:{stream}")
        sess_entry = sessions.setdefault(key, {"isid": login["isid"],
                                               "tsih": login["tsih"] if login["ok"] else None,
                                               "type": conn.session_type if conn else None,
                                               "connections": []})
        sess_entry["connections"].append(entry)  # type: ignore[union-attr]
    return ExchangeFacts(pdus=pdus, tasks=tasks, logins=[logins[k] for k in sorted(logins)], logouts=logouts,
                         sessions=list(sessions.values()))


# ---------------------------------------------------------------------------------------------------------
# Key=value text split across PDUs (RFC 7143 §6.1). tshark shows each PDU's items on their own and does not
# dissect some legal Login/Text PDUs at all (4.0.17 skips a Text Response with F=0 and C=0), so these facts
# come from the TCP payload tshark prints per frame, framed here (BHS + AHS + padded data; the lab's scripted
# sessions never negotiate digests) and decoded with the scripted initiator's own decoder, which shares no
# code with the analyzer.

#: Login/Text opcodes (§11.10-§11.13).
TEXT_OPCODES = frozenset({0x03, 0x04, 0x23, 0x24})


@dataclass
class TextPduFacts:
    """One Login or Text PDU read from the TCP payload: the frame carrying its last byte, flags, raw text."""

    frame: int
    t: float  # epoch of that frame
    stream: int
    from_target: bool
    opcode: int
    flags: int
    itt: int
    ttt: int | None  # Text PDUs only
    status: int | None  # Login Response: Status-Class << 8 | Status-Detail
    data: bytes
    bhs: bytes

    def as_pdu_facts(self) -> PduFacts:
        """The fields `collect_exchanges` reads, as tshark would name them (§11.10-§11.13 BHS layout)."""
        w = [int.from_bytes(self.bhs[o:o + 4], "big") for o in (20, 24, 28, 32)]
        fields: dict[str, object] = {"iscsi.opcode": f"0x{self.opcode:02x}",
                                     "iscsi.initiatortasktag": f"0x{self.itt:08x}"}
        if self.from_target:
            fields.update({"iscsi.statsn": str(w[1]), "iscsi.expcmdsn": str(w[2]), "iscsi.maxcmdsn": str(w[3])})
        else:
            fields.update({"iscsi.cmdsn": str(w[1]), "iscsi.I": "1" if self.bhs[0] & 0x40 else "0"})
        if self.login:
            fields.update({"iscsi.login.T": "1" if self.last else "0", "iscsi.login.nsg": str(self.flags & 3),
                           "iscsi.isid": self.bhs[8:14].hex(), "iscsi.tsih": f"0x{self.bhs[14:16].hex()}"})
            if self.status is not None:
                fields["iscsi.login.status"] = f"0x{self.status:04x}"
            else:
                fields["iscsi.cid"] = str(w[0] >> 16)
        return PduFacts(self.frame, self.t, self.stream, self.from_target, self.opcode, fields)

    @property
    def cont(self) -> bool:
        """C bit (0x40)."""
        return bool(self.flags & 0x40)

    @property
    def last(self) -> bool:
        """T bit of a Login PDU, F bit of a Text PDU (0x80)."""
        return bool(self.flags & 0x80)

    @property
    def login(self) -> bool:
        """A Login Request or Response."""
        return self.opcode in (0x03, 0x23)

    @property
    def name(self) -> str:
        """Opcode name as tshark prints it."""
        return OPCODES[self.opcode]

    @property
    def continues(self) -> bool:
        """The sender's text goes on in its next PDU: C=1, or a Text PDU with F=0 whose text stops inside a
        pair (tgtd's way to cut a long reply)."""
        return self.cont or (not self.login and not self.last and bool(self.data) and self.data[-1] != 0)


def collect_text_pdus(path: Path, target_port: int = 3260) -> list[TextPduFacts]:
    """Every Login/Text PDU of `path` in capture order, framed from the TCP payload of each frame.

    Needs a capture without retransmissions or reordering (the lab's loopback captures): the payloads
    of one direction are simply concatenated. Raises `LabError` when the framing does not add up.
    """
    rows = tshark_rows(path, ("frame.number", "frame.time_epoch", "tcp.stream", "tcp.srcport", "tcp.payload"),
                       "tcp.len > 0")
    flows: dict[tuple[int, bool], tuple[bytearray, list[tuple[int, int, float]]]] = {}
    for row in rows:
        if not row["tcp.payload"]:
            continue
        key = (int(row["tcp.stream"][0]), int(row["tcp.srcport"][0]) == target_port)
        buf, ends = flows.setdefault(key, (bytearray(), []))
        buf += bytes.fromhex(row["tcp.payload"][0].replace(":", ""))
        ends.append((len(buf), int(row["frame.number"][0]), float(row["frame.time_epoch"][0])))
    out: list[TextPduFacts] = []
    for (stream, from_target), (buf, ends) in flows.items():
        pos = 0
        while pos + 48 <= len(buf):
            bhs = bytes(buf[pos:pos + 48])
            ahs, dsl = bhs[4] * 4, int.from_bytes(bhs[5:8], "big")
            start = pos + 48 + ahs
            stop = start + dsl + (-dsl % 4)
            if stop > len(buf):
                raise LabError(f"{path}: stream {stream}: a PDU runs past the captured bytes at offset {pos}")
            frame, t = next((f, t) for end, f, t in ends if end >= start + dsl)
            op = bhs[0] & 0x3F
            if op in TEXT_OPCODES:
                out.append(TextPduFacts(
                    frame, t, stream, from_target, op, bhs[1], int.from_bytes(bhs[16:20], "big"),
                    int.from_bytes(bhs[20:24], "big") if op in (0x04, 0x24) else None,
                    bhs[36] << 8 | bhs[37] if op == 0x23 else None, bytes(buf[start:start + dsl]), bhs))
            pos = stop
    out.sort(key=lambda p: p.frame)
    return out


def _decode_keys(data: bytes) -> list[list[str]]:
    from analyzer.lab.scripted import decode_keys  # the generator's decoder, not the analyzer's

    return [[k, v] for k, v in decode_keys(data)]


def text_series(pdus: list[TextPduFacts]) -> list[dict[str, Any]]:
    """The C-bit series of `pdus` (and tgtd's F=0 cuts): per stream and sender, consecutive PDUs of one
    ITT whose text continues, up to the one that ends it. Each: the pieces (frame, length, flags, where the
    piece ends), the other side's answers in between, whether it completed, and the rejoined keys."""
    series: list[dict[str, Any]] = []
    open_: dict[tuple[int, bool], dict[str, Any]] = {}
    for p in pdus:
        key = (p.stream, p.from_target)
        peer = open_.get((p.stream, not p.from_target))
        if peer is not None:
            peer["answers"].append({"frame": p.frame, "opcode": p.name, "dsl": len(p.data),
                                    "flags": f"0x{p.flags:02x}", "keys": _decode_keys(p.data)})
            if (p.from_target and (p.last or (p.status or 0) >> 8)) or peer["itt"] != f"0x{p.itt:08x}":
                # the target ended the exchange (final response, failed login) or the initiator began
                # another one while the text went on
                peer["ended_by"] = {"frame": p.frame, "opcode": p.name, "flags": f"0x{p.flags:02x}",
                                    "status": None if p.status is None else f"0x{p.status:04x}"}
                series.append(open_.pop((p.stream, not p.from_target)))
        cur = open_.get(key)
        if cur is not None and cur["itt"] != f"0x{p.itt:08x}":
            cur["ended_by"] = {"frame": p.frame, "opcode": p.name, "flags": f"0x{p.flags:02x}", "status": None}
            series.append(open_.pop(key))
            cur = None
        if cur is None:
            if not p.continues:
                continue
            cur = open_[key] = {"stream": p.stream, "sender": "target" if p.from_target else "initiator",
                                "opcode": p.name, "itt": f"0x{p.itt:08x}", "pieces": [], "answers": [],
                                "completed": False, "ended_by": None, "text": b""}
        tail = p.data[p.data.rfind(b"\0") + 1:] if p.data and p.data[-1] != 0 else b""
        cur["pieces"].append({"frame": p.frame, "dsl": len(p.data), "flags": f"0x{p.flags:02x}",
                              "c": p.cont, "f_or_t": p.last, "ends_inside_pair": bool(tail),
                              "fragment": tail.decode("utf-8", "replace")})
        cur["text"] = cur["text"] + p.data
        if not p.continues:
            cur["completed"] = True
            series.append(open_.pop(key))
    series.extend(open_.values())
    for s in series:
        s["keys"] = _decode_keys(s.pop("text"))
    series.sort(key=lambda s: s["pieces"][0]["frame"])
    return series


def undissected_text_pdus(path: Path, target_port: int = 3260) -> list[TextPduFacts]:
    """The Login/Text PDUs of `path` that tshark's iSCSI dissector does not show (by frame, opcode, ITT)."""
    shown = {(q.frame, q.opcode, q.itt) for q in collect_pdus(path, target_port)}
    return [q for q in collect_text_pdus(path, target_port) if (q.frame, q.opcode, q.itt) not in shown]
