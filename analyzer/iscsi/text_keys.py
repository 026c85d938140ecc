"""Login/Text key=value data (RFC 7143 §6.1, §6.2, §13) and the §13 key table.

* :func:`parse_keys` -- the data segment of a Login or Text PDU -> key/value pairs in wire
  order. Bounded (at most :data:`MAX_PAIRS` pairs, :data:`MAX_VALUE_BYTES` per item).
  With ``continued=True`` (the PDU's text goes on in the next PDU: C bit, §6.1) a trailing
  fragment without its NUL is left out instead of becoming a bogus pair.
* :func:`text_tail` -- that trailing fragment (the bytes after the last NUL).
* :data:`KEY_SPEC` -- what RFC 7143 §13 (plus §12 security keys and RFC 7144) says about
  each key: use, senders, scope, type, default, result function.
* :func:`mask_secret` / :func:`mask_keys` -- hide CHAP/SRP/Kerberos secrets before printing.
* :func:`negotiate` -- the negotiated value of one key from an offer and its answer.

Records keep raw values; every place that *prints* keys must mask them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from .errors import DecodeError

#: Most key=value items accepted in one data segment (a SendTargets reply of a big
#: target can have a few hundred).
MAX_PAIRS: Final = 4096
#: Longest single item accepted. RFC 7143 §6.1 caps values at 8192 bytes (binary ones at
#: 1024 bytes, i.e. ~2 KiB hex); we allow 64 KiB before calling the PDU malformed.
MAX_VALUE_BYTES: Final = 65536

#: Answers with a special meaning (§6.2).
NOT_UNDERSTOOD: Final = "NotUnderstood"
IRRELEVANT: Final = "Irrelevant"
REJECT: Final = "Reject"
SPECIAL_VALUES: Final = frozenset({NOT_UNDERSTOOD, IRRELEVANT, REJECT})


def parse_keys(data: bytes | bytearray | memoryview, *, continued: bool = False) -> tuple[tuple[str, str], ...]:
    """Split a Login/Text data segment into ``(key, value)`` pairs in wire order (§6.1).

    Items are NUL-terminated ``key=value`` strings, UTF-8 (invalid bytes become U+FFFD).
    Empty items (padding, doubled NULs) are skipped. An item without ``=`` -- normally the
    tail of a pair split across PDUs with the C (continue) bit -- is returned as
    ``("", item)``; joining the data of C-bit PDUs is the state layer's job
    (``analyzer.state.negotiation.TextJoiner``, from the records' raw ``text``).

    ``continued``: the text of this PDU continues in the next one (C=1, §11.10-§11.13), so an
    unterminated trailing item is a fragment of a pair split across the PDU boundary
    (§6.1: a key or value may be split anywhere): it is left out, not turned into a pair
    (the raw bytes stay available to whoever rejoins the text, see :func:`text_tail`).
    Without ``continued`` an unterminated last item is taken as it is (a missing final NUL).

    Raises :class:`DecodeError` with the item's offset when there are more than
    :data:`MAX_PAIRS` items or an item is longer than :data:`MAX_VALUE_BYTES`.
    """
    raw = bytes(data)
    out: list[tuple[str, str]] = []
    pos = 0
    end = len(raw)
    if continued and end and raw[-1] != 0:
        end = raw.rfind(b"\0") + 1  # 0 when the whole segment is one fragment
        tail = len(raw) - end
        if tail > MAX_VALUE_BYTES:
            raise DecodeError(f"text key item longer than {MAX_VALUE_BYTES} bytes", end)
    while pos < end:
        nul = raw.find(b"\0", pos, end)
        if nul < 0:
            nul = end
        if nul > pos:
            if nul - pos > MAX_VALUE_BYTES:
                raise DecodeError(f"text key item longer than {MAX_VALUE_BYTES} bytes", pos)
            if len(out) >= MAX_PAIRS:
                raise DecodeError(f"more than {MAX_PAIRS} text keys", pos)
            item = raw[pos:nul].decode("utf-8", "replace")
            key, eq, value = item.partition("=")
            out.append((key, value) if eq else ("", item))
        pos = nul + 1
    return tuple(out)


def text_tail(data: bytes | bytearray | memoryview) -> bytes:
    """The unterminated trailing fragment of a Login/Text data segment: the bytes after its last
    NUL (§6.1), or ``b""`` when the segment is empty or ends with a NUL."""
    raw = bytes(data)
    if not raw or raw[-1] == 0:
        return b""
    return raw[raw.rfind(b"\0") + 1:]


def encode_keys(pairs: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> bytes:
    """Inverse of :func:`parse_keys` (no padding): ``key=value\\0`` for each pair."""
    return b"".join(f"{k}={v}".encode() + b"\0" if k else v.encode() + b"\0" for k, v in pairs)


# --------------------------------------------------------------------------- secrets

#: Keys whose values are masked when printed: CHAP challenge, response and name (project
#: rule), plus the SRP and Kerberos exchange values that would allow offline attacks.
SECRET_KEYS: Final = frozenset({
    "CHAP_C", "CHAP_R", "CHAP_N",
    "SRP_U", "SRP_s", "SRP_A", "SRP_B", "SRP_M", "SRP_HM",
    "KRB_AP_REQ", "KRB_AP_REP",
})
#: What a masked value is replaced with.
MASK: Final = "********"


def mask_secret(key: str, value: str) -> str:
    """``value``, or :data:`MASK` when ``key`` is a secret (CHAP_C, CHAP_R, CHAP_N, SRP_*, KRB_*)."""
    return MASK if key in SECRET_KEYS else value


def mask_keys(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The pairs with secret values masked (for reports and logs)."""
    if not any(k in SECRET_KEYS for k, _ in pairs):
        return pairs
    return tuple((k, MASK if k in SECRET_KEYS else v) for k, v in pairs)


def format_keys(pairs: tuple[tuple[str, str], ...], limit: int = 0) -> str:
    """``"k1=v1 k2=v2"`` with secrets masked; cut to ``limit`` characters (0 = no limit)."""
    text = " ".join(f"{k}={mask_secret(k, v)}" if k else v for k, v in pairs)
    if limit and len(text) > limit:
        return text[:max(limit - 3, 0)] + "..."
    return text


# --------------------------------------------------------------------------- key table


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One row of RFC 7143 §13 (or §12 / RFC 7144)."""

    name: str
    section: str  #: RFC section
    use: str  #: "IO" initialize only, "LO" leading only, "ALL", "FFPO" full feature only, "SEC" security
    senders: str  #: "I", "T" or "I/T"
    scope: str  #: "SW" session-wide, "CO" connection-only
    kind: str  #: "numeric", "boolean", "list", "text" (declarative string), "numeric-declarative"
    default: str  #: "" when there is none
    result: str  #: "Min", "Max", "AND", "OR", "List", "Declarative"
    low: int | None = None  #: numeric range
    high: int | None = None
    values: tuple[str, ...] = ()  #: allowed list values / booleans when fixed


_NUM24: Final = (1 << 24) - 1

#: RFC 7143 §13 keys (+ §12 authentication keys + RFC 7144), by name.
KEY_SPEC: Final[Mapping[str, KeySpec]] = {s.name: s for s in (
    KeySpec("HeaderDigest", "13.1", "IO", "I/T", "CO", "list", "None", "List", values=("CRC32C", "None")),
    KeySpec("DataDigest", "13.1", "IO", "I/T", "CO", "list", "None", "List", values=("CRC32C", "None")),
    KeySpec("MaxConnections", "13.2", "LO", "I/T", "SW", "numeric", "1", "Min", 1, 65535),
    KeySpec("SendTargets", "13.3", "FFPO", "I", "SW", "text", "", "Declarative"),
    KeySpec("TargetName", "13.4", "IO", "I/T", "SW", "text", "", "Declarative"),
    KeySpec("InitiatorName", "13.5", "IO", "I", "SW", "text", "", "Declarative"),
    KeySpec("TargetAlias", "13.6", "ALL", "T", "SW", "text", "", "Declarative"),
    KeySpec("InitiatorAlias", "13.7", "ALL", "I", "SW", "text", "", "Declarative"),
    KeySpec("TargetAddress", "13.8", "ALL", "T", "SW", "text", "", "Declarative"),
    KeySpec("TargetPortalGroupTag", "13.9", "IO", "T", "SW", "numeric-declarative", "", "Declarative", 0, 65535),
    KeySpec("InitialR2T", "13.10", "LO", "I/T", "SW", "boolean", "Yes", "OR", values=("Yes", "No")),
    KeySpec("ImmediateData", "13.11", "LO", "I/T", "SW", "boolean", "Yes", "AND", values=("Yes", "No")),
    KeySpec("MaxRecvDataSegmentLength", "13.12", "ALL", "I/T", "CO", "numeric-declarative", "8192",
            "Declarative", 512, _NUM24),
    KeySpec("MaxBurstLength", "13.13", "LO", "I/T", "SW", "numeric", "262144", "Min", 512, _NUM24),
    KeySpec("FirstBurstLength", "13.14", "LO", "I/T", "SW", "numeric", "65536", "Min", 512, _NUM24),
    KeySpec("DefaultTime2Wait", "13.15", "LO", "I/T", "SW", "numeric", "2", "Max", 0, 3600),
    KeySpec("DefaultTime2Retain", "13.16", "LO", "I/T", "SW", "numeric", "20", "Min", 0, 3600),
    KeySpec("MaxOutstandingR2T", "13.17", "LO", "I/T", "SW", "numeric", "1", "Min", 1, 65535),
    KeySpec("DataPDUInOrder", "13.18", "LO", "I/T", "SW", "boolean", "Yes", "OR", values=("Yes", "No")),
    KeySpec("DataSequenceInOrder", "13.19", "LO", "I/T", "SW", "boolean", "Yes", "OR", values=("Yes", "No")),
    KeySpec("ErrorRecoveryLevel", "13.20", "LO", "I/T", "SW", "numeric", "0", "Min", 0, 2),
    KeySpec("SessionType", "13.21", "LO", "I", "SW", "text", "Normal", "Declarative",
            values=("Discovery", "Normal")),
    KeySpec("iSCSIProtocolLevel", "13.24", "LO", "I/T", "SW", "numeric", "1", "Min", 0, 31),
    # RFC 3720 markers, obsoleted by RFC 7143 (§13.25: must not be offered; answer Irrelevant/Reject)
    KeySpec("OFMarker", "RFC3720 12.17", "IO", "I/T", "CO", "boolean", "No", "AND", values=("Yes", "No")),
    KeySpec("IFMarker", "RFC3720 12.17", "IO", "I/T", "CO", "boolean", "No", "AND", values=("Yes", "No")),
    KeySpec("OFMarkInt", "RFC3720 12.18", "IO", "I/T", "CO", "numeric", "2048", "Declarative", 1, 65535),
    KeySpec("IFMarkInt", "RFC3720 12.18", "IO", "I/T", "CO", "numeric", "2048", "Declarative", 1, 65535),
    # RFC 7144 §5.1
    KeySpec("TaskReporting", "RFC7144 5.1", "LO", "I/T", "SW", "list", "RFC3720", "List",
            values=("RFC3720", "ResponseFence", "FastAbort")),
    # §12 security keys
    KeySpec("AuthMethod", "12.1", "SEC", "I/T", "CO", "list", "None", "List",
            values=("KRB5", "SRP", "CHAP", "None")),
    KeySpec("CHAP_A", "12.1.3", "SEC", "I/T", "CO", "list", "", "List"),
    KeySpec("CHAP_I", "12.1.3", "SEC", "I/T", "CO", "text", "", "Declarative"),
    KeySpec("CHAP_C", "12.1.3", "SEC", "I/T", "CO", "text", "", "Declarative"),
    KeySpec("CHAP_N", "12.1.3", "SEC", "I/T", "CO", "text", "", "Declarative"),
    KeySpec("CHAP_R", "12.1.3", "SEC", "I/T", "CO", "text", "", "Declarative"),
    KeySpec("SRP_U", "12.1.2", "SEC", "I", "CO", "text", "", "Declarative"),
    KeySpec("SRP_GROUP", "12.1.2", "SEC", "I/T", "CO", "list", "", "List"),
    KeySpec("SRP_s", "12.1.2", "SEC", "T", "CO", "text", "", "Declarative"),
    KeySpec("SRP_A", "12.1.2", "SEC", "I", "CO", "text", "", "Declarative"),
    KeySpec("SRP_B", "12.1.2", "SEC", "T", "CO", "text", "", "Declarative"),
    KeySpec("SRP_M", "12.1.2", "SEC", "I", "CO", "text", "", "Declarative"),
    KeySpec("SRP_HM", "12.1.2", "SEC", "T", "CO", "text", "", "Declarative"),
    KeySpec("TargetAuth", "12.1.2", "SEC", "I", "CO", "boolean", "No", "Declarative", values=("Yes", "No")),
    KeySpec("KRB_AP_REQ", "12.1.1", "SEC", "I", "CO", "text", "", "Declarative"),
    KeySpec("KRB_AP_REP", "12.1.1", "SEC", "T", "CO", "text", "", "Declarative"),
)}


def is_vendor_key(key: str) -> bool:
    """True for vendor/experimental keys: ``X-`` (vendor) and ``X#`` (IANA registered), §13.23."""
    return key.startswith(("X-", "X#"))


# --------------------------------------------------------------------------- negotiation


class Negotiated(NamedTuple):
    """Result of :func:`negotiate_detail`."""

    value: str  #: the value in force after the exchange
    note: str  #: "" when normal; otherwise what happened ("answer Reject: default kept", ...)


def _num(text: str) -> int | None:
    try:
        return int(text, 0) if text[:2].lower() == "0x" else int(text)
    except ValueError:
        return None


def negotiate_detail(key: str, offer: str, answer: str) -> Negotiated:
    """The value in force after ``key=offer`` was answered with ``key=answer`` (§6.2, §13).

    Numbers use the key's Min/Max function; booleans AND/OR; lists take the answer (the
    responder picks the first value it accepts from the offer); declarative keys keep the
    offer (each side declares its own value). A special answer (NotUnderstood,
    Irrelevant, Reject) keeps the key's default, and the note says so.
    """
    spec = KEY_SPEC.get(key)
    default = spec.default if spec is not None else ""
    if answer in SPECIAL_VALUES:
        return Negotiated(default, f"answer {answer}: default kept")
    if spec is None:
        return Negotiated(answer, "unknown key: answer taken as is")
    fn = spec.result
    if fn in ("Min", "Max"):
        o, a = _num(offer), _num(answer)
        if o is None or a is None:
            return Negotiated(answer, "non-numeric value")
        value = min(o, a) if fn == "Min" else max(o, a)
        note = ""
        if (fn == "Min" and a > o) or (fn == "Max" and a < o):
            note = f"answer {a} violates {fn}imum function; result {value}"
        elif spec.low is not None and spec.high is not None and not spec.low <= value <= spec.high:
            note = f"value {value} outside {spec.low}..{spec.high}"
        return Negotiated(str(value), note)
    if fn in ("AND", "OR"):
        if offer not in ("Yes", "No") or answer not in ("Yes", "No"):
            return Negotiated(answer, "non-boolean value")
        if fn == "AND":
            value_b = offer == "Yes" and answer == "Yes"
        else:
            value_b = offer == "Yes" or answer == "Yes"
        return Negotiated("Yes" if value_b else "No", "")
    if fn == "List":
        offered = offer.split(",")
        if answer in offered:
            return Negotiated(answer, "")
        return Negotiated(answer, "answer not among the offered values")
    return Negotiated(offer, "declarative: no negotiation")


def negotiate(key: str, offer: str, answer: str) -> str:
    """Just the value of :func:`negotiate_detail`."""
    return negotiate_detail(key, offer, answer).value
