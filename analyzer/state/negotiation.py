"""Login/Text key negotiation as seen from the wire (RFC 7143 §6.2, §6.3, §13).

Theory of operation
-------------------
Keys accumulate over every Login PDU of a login phase (and over FFP Text exchanges).
A key sent by one side and not yet pending from the other is an *offer*; the same key
coming back from the other side is the *answer*, and the negotiated value is the result
function of the pair (§6.2.2 / §13: Minimum, Maximum, Boolean AND/OR, first acceptable
from a list). Declarative keys (§6.2: InitiatorName, TargetName, TargetPortalGroupTag,
aliases, TargetAddress, SessionType, MaxRecvDataSegmentLength which each side declares
for what *it* receives, §13.12) get no answer; we record them per sender.

An answer that the result function would not produce (a Minimum answer above the offer,
a Yes answer to an AND offer of No, a value not in the offered list) is reported as a
:class:`NegotiationIssue`, and the value the compliant function gives is kept. Special
answers Reject / NotUnderstood / Irrelevant (§6.2) leave the key at its default.

Secrets never leave this module: CHAP_C, CHAP_R (and all SRP_/KRB_/SPKM_ values) are not
stored; only ``chap_used``, ``chap_algorithm`` and ``chap_mutual`` are.

Text split across PDUs (§6.1, §6.2; C bit of §11.10-§11.13): a sender whose key=value text
does not fit in one PDU sets C=1 and goes on in its next PDU of the same exchange; a key or a
value may be cut anywhere (mid-key, mid-value, around the '=', right before the NUL). The
data segments of such a series up to the first PDU with C=0 form one logical text data segment
(LTDS), and only that is meaningful. :class:`TextJoiner` rejoins one sender's series byte-exactly
from the records' raw ``text`` and hands the LTDS's keys to :meth:`Negotiation.feed`; the tracker
decides when a series starts and ends (per connection and direction: login phase, Text
exchange by ITT) and turns a :class:`TextBreak` into a Deviation record. Bounded: at most
:data:`MAX_LTDS_BYTES` are buffered per sender; beyond that the complete pairs of each PDU are used
and the pairs split across PDUs are lost, which a TextBreak says (likewise, without a break, when
the framer did not keep a data segment: then the PDU has neither raw text nor keys).

The key table below is a minimal own copy (RFC 7143 §13); ``analyzer/iscsi/text_keys.py``
may replace it once it exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from analyzer.iscsi.errors import DecodeError
from analyzer.iscsi.text_keys import MAX_PAIRS, MAX_VALUE_BYTES, parse_keys


class Fn(Enum):
    """Result functions of §6.2.2 / §13."""

    MIN = "Minimum"
    MAX = "Maximum"
    AND = "Boolean AND"
    OR = "Boolean OR"
    LIST = "first acceptable from the offered list"
    DECLARATIVE = "declarative"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key of RFC 7143 §13."""

    fn: Fn
    default: str | None
    scope: str  #: "SW" (session-wide) or "CO" (connection-only)


KEYS: dict[str, KeySpec] = {
    "HeaderDigest": KeySpec(Fn.LIST, "None", "CO"),  # §13.1
    "DataDigest": KeySpec(Fn.LIST, "None", "CO"),  # §13.1
    "MaxConnections": KeySpec(Fn.MIN, "1", "SW"),  # §13.2
    "TargetName": KeySpec(Fn.DECLARATIVE, None, "SW"),  # §13.4
    "InitiatorName": KeySpec(Fn.DECLARATIVE, None, "SW"),  # §13.5
    "TargetAlias": KeySpec(Fn.DECLARATIVE, None, "SW"),  # §13.6
    "InitiatorAlias": KeySpec(Fn.DECLARATIVE, None, "SW"),  # §13.7
    "TargetAddress": KeySpec(Fn.DECLARATIVE, None, "SW"),  # §13.8
    "TargetPortalGroupTag": KeySpec(Fn.DECLARATIVE, None, "SW"),  # §13.9
    "InitialR2T": KeySpec(Fn.OR, "Yes", "SW"),  # §13.10
    "ImmediateData": KeySpec(Fn.AND, "Yes", "SW"),  # §13.11
    "MaxRecvDataSegmentLength": KeySpec(Fn.DECLARATIVE, "8192", "CO"),  # §13.12
    "MaxBurstLength": KeySpec(Fn.MIN, "262144", "SW"),  # §13.13
    "FirstBurstLength": KeySpec(Fn.MIN, "65536", "SW"),  # §13.14
    "DefaultTime2Wait": KeySpec(Fn.MAX, "2", "SW"),  # §13.15
    "DefaultTime2Retain": KeySpec(Fn.MIN, "20", "SW"),  # §13.16
    "MaxOutstandingR2T": KeySpec(Fn.MIN, "1", "SW"),  # §13.17
    "DataPDUInOrder": KeySpec(Fn.OR, "Yes", "SW"),  # §13.18
    "DataSequenceInOrder": KeySpec(Fn.OR, "Yes", "SW"),  # §13.19
    "ErrorRecoveryLevel": KeySpec(Fn.MIN, "0", "SW"),  # §13.20
    "SessionType": KeySpec(Fn.DECLARATIVE, "Normal", "SW"),  # §13.21
    "AuthMethod": KeySpec(Fn.LIST, "None", "CO"),  # §12
}

#: Session-wide keys reported in SessionSummary.params (negotiated on the leading login).
SESSION_PARAMS = ("MaxConnections", "InitialR2T", "ImmediateData", "MaxBurstLength", "FirstBurstLength",
                  "DefaultTime2Wait", "DefaultTime2Retain", "MaxOutstandingR2T", "DataPDUInOrder",
                  "DataSequenceInOrder", "ErrorRecoveryLevel", "SessionType")
#: Connection-only keys reported in ConnectionSummary.params.
CONNECTION_PARAMS = ("HeaderDigest", "DataDigest", "AuthMethod")

_SECRET_PREFIXES = ("CHAP_", "SRP_", "KRB_", "SPKM")


def without_secrets(keys: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``keys`` with the value of every authentication key (CHAP_/SRP_/KRB_/SPKM, §12) emptied:
    the name shows which method ran, the value (challenges, responses) is never kept."""
    return tuple((k, "" if k.startswith(_SECRET_PREFIXES) else v) for k, v in keys)
_SPECIAL = {"Reject": "rejected", "NotUnderstood": "not_understood", "Irrelevant": "irrelevant"}
SIDES = ("initiator", "target")


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem found while negotiating (turned into a NegotiationIssue record by the tracker)."""

    key: str
    kind: str
    offered_by: str
    offer: str
    answer: str | None
    detail: str


def _other(side: str) -> str:
    return "target" if side == "initiator" else "initiator"


def _int(v: str) -> int | None:
    try:
        return int(v, 0)
    except ValueError:
        return None


def _result(fn: Fn, offer: str, answer: str) -> tuple[str, str | None]:
    """(result, problem or None) for an offer/answer pair."""
    if fn is Fn.MIN or fn is Fn.MAX:
        o, a = _int(offer), _int(answer)
        if o is None or a is None:
            return answer, f"non-numeric value for a {fn.value} key"
        r = min(o, a) if fn is Fn.MIN else max(o, a)
        if r != a:
            return str(r), f"answer {a} is not the {fn.value} of offer {o} and answer"
        return answer, None
    if fn is Fn.AND:
        if offer == "No" and answer != "No":
            return "No", "AND offer No must be answered No"
        return ("Yes" if offer == "Yes" and answer == "Yes" else "No"), None
    if fn is Fn.OR:
        if offer == "Yes" and answer != "Yes":
            return "Yes", "OR offer Yes must be answered Yes"
        return ("Yes" if "Yes" in (offer, answer) else "No"), None
    if fn is Fn.LIST:
        offered = [v.strip() for v in offer.split(",")]
        if answer not in offered:
            return answer, f"answer {answer!r} not in the offered list"
        return answer, None
    return answer, None


@dataclass(slots=True)
class Negotiation:
    """The key exchange of one login phase (or one FFP Text exchange) on one connection."""

    #: side -> key -> last value declared (declarative keys)
    declared: dict[str, dict[str, str]] = field(default_factory=lambda: {"initiator": {}, "target": {}})
    #: key -> negotiated result (offer/answer keys that completed)
    results: dict[str, str] = field(default_factory=dict)
    #: key -> (offering side, offered value), not yet answered
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)
    chap_used: bool = False
    chap_algorithm: str | None = None
    chap_mutual: bool = False
    discovered_targets: list[str] = field(default_factory=list)

    def feed(self, side: str, keys: tuple[tuple[str, str], ...], *, ffp_text: bool = False) -> list[Issue]:
        """Account for the keys one side sent in one Login/Text PDU, or in one C-bit series of them
        rejoined by :class:`TextJoiner` (§6.1: only the whole text is meaningful)."""
        issues: list[Issue] = []
        for name, value in keys:
            if name.startswith(_SECRET_PREFIXES):
                self._security(side, name, value)
                continue
            spec = KEYS.get(name)
            if ffp_text and name in ("TargetName", "TargetAddress"):
                # SendTargets reply (§13.3): a list of targets, not this session's identity.
                if name == "TargetName" and side == "target" and len(self.discovered_targets) < 1000:
                    self.discovered_targets.append(value)
                continue
            if ffp_text and name == "SendTargets":
                continue
            if spec is not None and spec.fn is Fn.DECLARATIVE:
                self.declared[side][name] = value
                continue
            pend = self.pending.get(name)
            if pend is not None and pend[0] != side:
                offered_by, offer = pend
                del self.pending[name]
                special = _SPECIAL.get(value)
                if special is not None:
                    issues.append(Issue(name, special, offered_by, offer, value,
                                        f"{name}={offer} answered {value}; the default stays in force"))
                    continue
                if spec is None:
                    self.results[name] = value
                    continue
                result, problem = _result(spec.fn, offer, value)
                self.results[name] = result
                if problem is not None:
                    issues.append(Issue(name, "answer_violates_result", offered_by, offer, value, problem))
            else:
                self.pending[name] = (side, value)
        return issues

    def _security(self, side: str, name: str, value: str) -> None:
        if name.startswith("CHAP_"):
            self.chap_used = True
            if name == "CHAP_A" and side == "target":
                self.chap_algorithm = value  # §12.1.3: the target picks one algorithm
            if name == "CHAP_C" and side == "initiator":
                self.chap_mutual = True  # the initiator challenges the target: mutual CHAP

    def close(self) -> list[Issue]:
        """End of the phase: unanswered offers (§6.2: every offer needs an answer)."""
        issues = [Issue(k, "unanswered", s, v, None, f"{k}={v} offered by the {s} was never answered")
                  for k, (s, v) in self.pending.items() if k in KEYS]
        self.pending.clear()
        return issues

    def value(self, key: str) -> str | None:
        """Negotiated value, else the key's default (§13)."""
        if key in self.results:
            return self.results[key]
        for side in ("initiator", "target"):  # declarative keys (§13.21 SessionType, ...)
            declared = self.declared[side].get(key)
            if declared is not None:
                return declared
        spec = KEYS.get(key)
        return spec.default if spec is not None else None

    def declared_by(self, side: str, key: str) -> str | None:
        """Value of a declarative key as sent by ``side``."""
        return self.declared[side].get(key)

    def max_recv_dsl(self, side: str) -> int:
        """§13.12: what ``side`` declared it can receive (8192 by default)."""
        v = _int(self.declared[side].get("MaxRecvDataSegmentLength", "8192"))
        return v if v is not None and v > 0 else 8192

    def digest(self, key: str) -> bool:
        """True when HeaderDigest/DataDigest was negotiated to CRC32C."""
        return (self.value(key) or "None").upper() == "CRC32C"

    def auth_method(self) -> str:
        """Negotiated AuthMethod, or "CHAP" when CHAP keys flowed without an AuthMethod answer."""
        v = self.results.get("AuthMethod")
        if v is None:
            return "CHAP" if self.chap_used else "None"
        return v


# --------------------------------------------------------------------------- text continuation (§6.1)

#: Most bytes of one logical text data segment rejoined per sender. Our bound, not the RFC's (it
#: sets none): 512 KiB hold a SendTargets reply listing a few thousand targets.
MAX_LTDS_BYTES: Final = 512 * 1024

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TextBreak:
    """A problem with a C-bit series (turned into a Deviation record by the tracker)."""

    kind: str  #: "text_continuation_too_long", "text_continuation_malformed"
    rfc: str
    detail: str
    start_frame: int  #: first PDU of the series


def _items(raw: bytes) -> Pairs:
    # The pairs of an LTDS that parse_keys refused (too many items or one too long): the first
    # MAX_PAIRS items, over-long ones skipped.
    out: list[tuple[str, str]] = []
    for chunk in raw.split(b"\0"):
        if not chunk or len(chunk) > MAX_VALUE_BYTES:
            continue
        key, eq, value = chunk.decode("utf-8", "replace").partition("=")
        out.append((key, value) if eq else ("", key))
        if len(out) >= MAX_PAIRS:
            break
    return tuple(out)


@dataclass(slots=True, eq=False)
class TextJoiner:
    """One sender's Login/Text PDUs of one exchange, rejoined into one LTDS (RFC 7143 §6.1).

    :meth:`feed` takes each PDU's raw data segment (``text``), its complete pairs (``keys``, the
    fallback when ``text`` is missing), its DataSegmentLength and whether the text goes on in the
    next PDU (``more``: C=1). It returns None while the series continues and the LTDS's keys at
    its last PDU. A single PDU with C=0 costs nothing: its own ``keys`` come back as they are.
    """

    limit: int = MAX_LTDS_BYTES
    buf: bytearray = field(default_factory=bytearray)
    #: complete pairs gathered PDU by PDU once byte-exact joining had to stop
    pairs: list[tuple[str, str]] = field(default_factory=list)
    exact: bool = True
    pdus: int = 0  #: PDUs of the open series (0: none open)
    first_frame: int = 0
    tag: int | None = None  #: ITT of the open series

    @property
    def open(self) -> bool:
        """True while a series has started and not reached its C=0 PDU."""
        return self.pdus > 0

    def reset(self) -> None:
        """Forget the open series (its exchange ended or was abandoned)."""
        self.buf = bytearray()
        self.pairs = []
        self.exact, self.pdus, self.first_frame, self.tag = True, 0, 0, None

    def feed(self, text: bytes, keys: Pairs, dsl: int, more: bool, frame: int, tag: int
             ) -> tuple[Pairs | None, list[TextBreak]]:
        """Account for one PDU of the sender; (keys of the completed LTDS or None, problems)."""
        breaks: list[TextBreak] = []
        if not self.pdus:
            if not more:
                return keys, breaks
            self.first_frame, self.tag = frame, tag
        self.pdus += 1
        if self.exact:
            if dsl and not text:  # the framer did not keep this data segment
                self._inexact()
            elif len(self.buf) + len(text) > self.limit:
                breaks.append(TextBreak(
                    "text_continuation_too_long", "§6.1",
                    f"the text continued over {self.pdus} PDUs beyond {self.limit} bytes; the analyzer stopped "
                    f"rejoining it, so pairs split across PDUs from here on are lost", self.first_frame))
                self._inexact()
            else:
                self.buf += text
        if not self.exact:
            room = MAX_PAIRS - len(self.pairs)
            self.pairs.extend(kv for kv in keys[:max(room, 0)] if kv[0])
        if more:
            return None, breaks
        out = self._joined(breaks)
        self.reset()
        return out, breaks

    def complete_pairs(self) -> Pairs:
        """The complete pairs of the open series so far (its text up to the last NUL; §6.1), for a
        record of what was seen when the exchange ended before the series did."""
        if not self.exact:
            return tuple(self.pairs)
        try:
            return parse_keys(self.buf, continued=True)
        except DecodeError:
            return _items(bytes(self.buf[:self.buf.rfind(b"\0") + 1]))

    def _inexact(self) -> None:
        self.exact = False
        try:
            self.pairs = list(parse_keys(self.buf, continued=True))
        except DecodeError:
            self.pairs = list(_items(bytes(self.buf[:self.buf.rfind(b"\0") + 1])))
        self.buf = bytearray()

    def _joined(self, breaks: list[TextBreak]) -> Pairs:
        if not self.exact:
            return tuple(self.pairs)
        raw = bytes(self.buf)
        try:
            return parse_keys(raw)
        except DecodeError as e:
            breaks.append(TextBreak("text_continuation_malformed", "§6.1",
                                    f"the rejoined text of {self.pdus} PDUs is not valid key=value text "
                                    f"({e.reason}); its first {MAX_PAIRS} acceptable items are used",
                                    self.first_frame))
            return _items(raw)
