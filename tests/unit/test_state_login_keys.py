"""LoginKeys: the state layer's record of a login's keys joined across C-bit PDUs (RFC 7143 §6.1),
and the anomaly context reading it instead of parsing keys out of single PDUs."""

from __future__ import annotations

import builders as b
from test_anomalies_support import pipe
from test_text_continuation import INAME, ISID, LOGIN_TEXT_I, LOGIN_TEXT_T, TNAME, Capture, at, cut, of

from analyzer.iscsi.text_keys import encode_keys
from analyzer.records import I2T, T2I, LoginRequest
from analyzer.state.events import LoginKeys


def _split_login_rejected() -> Capture:
    """InitiatorName and TargetName both cut mid-value by the C bit; the target answers 0x0203."""
    text = encode_keys((("InitiatorName", INAME), ("TargetName", TNAME), ("SessionType", "Normal")))
    c = Capture()
    c.opened()
    pieces = cut(text, [at(text, b"initiator", 2), at(text, b"storage", 3)])
    for k, piece in enumerate(pieces):
        last = k == len(pieces) - 1
        c.add(b.login_request(data=piece, cont=not last, transit=last, csg=1, nsg=3, isid=ISID, tsih=0, itt=1,
                              cmdsn=c.cmdsn), I2T)
        if not last:  # §6.2: a C=1 PDU is answered by an empty one
            c.add(b.login_response(data=b"", transit=False, csg=1, nsg=3, isid=ISID, tsih=0, itt=1,
                                   statsn=c.take_statsn(), **c.window()), T2I)
    c.add(b.login_response(transit=False, csg=1, nsg=3, isid=ISID, tsih=0, itt=1, statsn=c.take_statsn(),
                           status_class=2, status_detail=3, **c.window()), T2I)
    return c


def test_login_keys_carry_the_joined_text_of_both_sides() -> None:
    c = Capture()
    c.opened()
    c.login(LOGIN_TEXT_I, [at(LOGIN_TEXT_I, b"TargetName", 5)], LOGIN_TEXT_T, [at(LOGIN_TEXT_T, b"Alias", 2)])
    _, out = c.run()
    (rec,) = of(out, LoginKeys)
    assert rec.outcome == "succeeded" and rec.first_frame == 2 and rec.itt == 1
    assert dict(rec.initiator)["TargetName"] == TNAME and dict(rec.initiator)["InitiatorName"] == INAME
    assert dict(rec.target)["TargetPortalGroupTag"] == "7"


def test_login_keys_of_a_failed_split_login() -> None:
    c = _split_login_rejected()
    _, out = c.run()
    (rec,) = of(out, LoginKeys)
    assert rec.outcome == "failed"
    assert (dict(rec.initiator)["InitiatorName"], dict(rec.initiator)["TargetName"]) == (INAME, TNAME)
    # no single PDU holds the whole TargetName: only the joined text does
    assert not any(dict(r.keys).get("TargetName") == TNAME for r in c.records if isinstance(r, LoginRequest))


def test_anomaly_names_a_failed_login_from_the_joined_text() -> None:
    c = _split_login_rejected()
    (a,) = [x for x in pipe(c.records) if x.kind == "login_failed"]
    assert f"Normal session login of {INAME} to {TNAME}" in a.message and "Not found (0x0203)" in a.message


def test_login_keys_never_carry_authentication_secrets() -> None:
    secret = "0x" + "ab" * 16
    text_i = encode_keys((("InitiatorName", INAME), ("TargetName", TNAME), ("CHAP_R", secret)))
    c = Capture()
    c.opened()
    c.login(text_i, (), LOGIN_TEXT_T, ())
    _, out = c.run()
    (rec,) = of(out, LoginKeys)
    assert ("CHAP_R", "") in rec.initiator and secret not in repr(out)
