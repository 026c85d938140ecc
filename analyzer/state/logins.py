"""The login phase (RFC 7143 §6.3, §11.12, §11.13): beginning a login (leading, added,
continuation, reinstatement), adopting one the capture began inside, its success (negotiated
parameters, TSIH, SessionIdentified) or failure, and §13.12 data segment limits.
"""

from __future__ import annotations

from collections.abc import Iterable

from analyzer.iscsi.opcodes import (
    login_status_name,
)
from analyzer.records import (
    DIGEST_NONE_NEGOTIATED,
    I2T,
    DigestFact,
    LoginRequest,
    LoginResponse,
    Pdu,
)
from analyzer.state import (
    connection,
    desk,
    identity,
    machines,
    reinstatement,
    task_book,
    text_series,
)
from analyzer.state.books import (
    PDU_NAMES,
    Q1,
    Q4,
    R1,
    R2,
    S1,
    S4,
    S8,
    SIDES,
    Conn,
    Login,
    Session,
    key_map,
)
from analyzer.state.cleanup import CleanupInput
from analyzer.state.connection import FFP_STATES, ConnInput, ConnState
from analyzer.state.desk import Desk
from analyzer.state.events import (
    ConnectionParams,
    LoginKeys,
)
from analyzer.state.negotiation import CONNECTION_PARAMS, SESSION_PARAMS, Negotiation, without_secrets
from analyzer.state.session import SessInput, SessState
from analyzer.state.tasks import (
    Task,
)


def check_dsl(d: Desk, c: Conn, s: Session | None, pdu: Pdu) -> None:
    """§13.12: a data segment must not exceed what the receiver declared."""
    if c.login is not None or isinstance(pdu, (LoginRequest, LoginResponse)):
        limit, who, phase = 8192, "default (login phase) MaxRecvDataSegmentLength 8192 [unverified]", "login"
    elif c.params_known:
        known = c.mrdsl_target if pdu.direction == I2T else c.mrdsl_initiator
        if known is None:  # not declared in the part of the login we saw
            return
        limit = known
        who = f"the {'target' if pdu.direction == I2T else 'initiator'}'s MaxRecvDataSegmentLength"
        phase = "ffp"
    else:
        return
    if pdu.dsl > limit:
        desk.seq_event(d, pdu, s, "max_recv_dsl_exceeded", limit, pdu.dsl,
                        f"{PDU_NAMES.get(type(pdu).__name__, 'PDU')} DataSegmentLength {pdu.dsl} > {who}",
                        pdu.itt, phase)


def observe_digests(c: Conn, pdu: Pdu) -> None:
    """Digests not negotiated in the capture, detected from a full-feature PDU as framed (§13.1).

    The framer decided for this PDU whether a header digest follows its header ("ok"/"bad": one
    is there) and, for a PDU with a data segment, whether a data digest follows it.
    """
    if c.header_digest.source != "negotiated":
        c.header_digest = DigestFact(pdu.header_digest is not None, "detected")
    if c.data_digest.source != "negotiated" and pdu.dsl > 0:
        c.data_digest = DigestFact(pdu.data_digest is not None, "detected")


def login_request(d: Desk, c: Conn, pdu: LoginRequest) -> None:
    keys = key_map(pdu.keys)
    new_phase = c.login is None and any(c.state[side] in (ConnState.S3_XPT_UP, S4, ConnState.UNKNOWN)
                                        for side in SIDES)
    if new_phase:
        if c.state["target"] is ConnState.UNKNOWN:
            c.mid_stream = False  # the login is in the capture: identity is known
        text_series.ltds_end(d, c, pdu, "the initiator began a new login")
        begin_login(d, c, pdu, keys)
    s = c.session
    if s is not None:
        s.last_frame, s.last_ts = pdu.frame, pdu.ts_ns
    check_dsl(d, c, s, pdu)
    machines.conn_both(d, c, ConnInput.LOGIN_REQUEST, pdu.frame, pdu.ts_ns,
                    desk.events(pdu, "Login Request"), settle=False)
    if new_phase and c.login is not None and s is not None:
        ev = f"connection {c.id} entered IN_LOGIN ({c.login.kind} login, frame {pdu.frame})"
        machines.sess_both(d, s, SessInput.LOGIN_STARTED, pdu.frame, pdu.ts_ns, ev)
        start_reinstatement_cleanup(d, c, pdu)
        t = Task(s.id, c.id, pdu.itt, "login", pdu.first_frame, pdu.ts_ns, True, pdu.cmdsn, None)
        s.tasks[pdu.itt] = t
    if c.login is not None:
        joined = text_series.ltds(d, c, s, pdu)
        if joined is not None:
            if joined is not pdu.keys:  # the text spanned C-bit PDUs: names may come only now
                joined_identity(d, c, key_map(joined))
            c.login.keys["initiator"].extend(joined)
            desk.issues(d, c, pdu, c.login.neg.feed("initiator", joined))
        if s is not None and (lt := s.tasks.get(c.login.itt)) is not None:
            lt.touch(pdu.frame, pdu.ts_ns)
    machines.settle_conn(d, c, pdu.frame, pdu.ts_ns, "Login Request")


def joined_identity(d: Desk, c: Conn, keys: dict[str, str]) -> None:
    """Names the first Login Request did not carry whole because its text continued in later
    PDUs (§6.1) complete the login's identity, as ``_begin_login`` would have used them."""
    login, s = c.login, c.session
    if login is None or s is None:
        return
    iname, tname, stype = keys.get("InitiatorName"), keys.get("TargetName"), keys.get("SessionType")
    if login.kind not in ("leading", "session_reinstatement") or login.tsih != 0:
        if s.initiator_name is None and iname:
            s.initiator_name = iname
        return
    if stype:
        s.session_type = stype
    if (s.initiator_name or not iname) and (s.target_name or not tname):
        return
    identity.unindex(d, s)
    s.initiator_name, s.target_name = s.initiator_name or iname, s.target_name or tname
    if login.old_session is None:  # §6.3.5: the same InitiatorName, ISID and TargetName as a live session
        old = d.by_nexus.get((s.initiator_name, login.isid, s.target_name))
        if old is not None and old is not s:
            if old.live():
                login.kind, login.old_session = "session_reinstatement", old
                login.old_states = {side: old.state[side].value for side in SIDES}
                d.reinstating[old.id] = c
            else:
                identity.unindex(d, old)
    identity.index(d, s)


def begin_login(d: Desk, c: Conn, pdu: LoginRequest, keys: dict[str, str]) -> None:
    iname, tname = keys.get("InitiatorName"), keys.get("TargetName")
    stype = keys.get("SessionType")
    login = Login(pdu.itt, pdu.isid, pdu.tsih, pdu.cid, "leading", pdu.frame, pdu.ts_ns)
    c.cid = pdu.cid
    # No digests in the login phase (§13.1); the negotiation decides what follows it.
    c.header_digest = c.data_digest = DIGEST_NONE_NEGOTIATED
    # The first Login Request of a connection carries InitiatorName (§13.6); without it (and on a
    # connection whose start we did not see) the capture began inside the login.
    login.start_seen = (c.state["target"] is not ConnState.UNKNOWN or "InitiatorName" in keys or pdu.cont)
    if pdu.tsih == 0:
        old = d.by_nexus.get((iname, pdu.isid, tname))
        if old is not None and old.live():
            login.kind, login.old_session = "session_reinstatement", old
            login.old_states = {side: old.state[side].value for side in SIDES}
            d.reinstating[old.id] = c
        s = identity.new_session(d, pdu.frame, pdu.ts_ns, False)
        s.isid, s.initiator_name, s.target_name = pdu.isid, iname, tname
        follow_redirect(d, s, iname, tname)
        # SessionType defaults to Normal (§13.21) only if we saw the first Login Request
        s.session_type = stype or ("Normal" if login.start_seen else None)
        s.mid_stream = not login.start_seen  # its identity keys were in a PDU not captured
        c.role = "leading"
        if old is not None and login.old_session is None:
            identity.unindex(d, old)
        identity.index(d, s)
    else:
        found = d.by_tsih.get((pdu.isid, pdu.tsih))
        if found is None:
            s = identity.new_session(d, pdu.frame, pdu.ts_ns, True)
            s.isid, s.tsih, s.initiator_name, s.target_name = pdu.isid, pdu.tsih, iname, tname
            login.kind, c.role = "unknown", "added"
            identity.index(d, s)
        else:
            s = found
            old_c = next((x for x in reversed(s.conns) if x is not c and x.cid == pdu.cid
                          and (any(x.state[sd] not in (S1, S8) for sd in SIDES)
                               or any(x.cleanup[sd] in (R1, R2) for sd in SIDES))
                          and x.ended not in ("logout", "session_closed", "reinstated")), None)
            if old_c is not None:
                login.kind, login.old_conn, c.role = "connection_reinstatement", old_c, "reinstatement"
                login.old_states = {side: old_c.state[side].value for side in SIDES}
                c.reinstates = old_c.id
            elif s.state["target"] is Q4 or s.state["initiator"] is Q4:
                login.kind, c.role = "continuation", "added"
            else:
                login.kind, c.role = "added", "added"
            if s.initiator_name is None:
                s.initiator_name = iname
    c.login = login
    identity.attach(d, c, s)


def start_reinstatement_cleanup(d: Desk, c: Conn, pdu: LoginRequest) -> None:
    """§6.3.4 / §8.2: a connection-reinstatement login starts CSM-I for the old connection (M2)."""
    login = c.login
    if login is None or login.old_conn is None:
        return
    old = login.old_conn
    if any(old.state[side] in FFP_STATES for side in SIDES):
        # The old connection still looks alive. §6.3.4 implies the initiator considers it failed,
        # but whether it really goes away is decided by its own wire (see _conn_reinstated).
        return
    for side in SIDES:
        if old.cleanup[side] is R1:
            machines.cleanup_step(d, old, side, CleanupInput.CLEANUP_STARTED, pdu.frame, pdu.ts_ns,
                               f"CSM-I: reinstatement Login {'sent' if side == 'initiator' else 'received'} "
                               f"on {c.id} (frame {pdu.frame})")


def login_response(d: Desk, c: Conn, pdu: LoginResponse) -> None:
    if c.login is None and any(c.state[side] in (S4, ConnState.UNKNOWN) for side in SIDES):
        adopt_login(d, c, pdu)
    s = c.session
    if s is None:
        s = identity.session_of(d, c, pdu.frame, pdu.ts_ns)
    s.last_frame, s.last_ts = pdu.frame, pdu.ts_ns
    check_dsl(d, c, s, pdu)
    login = c.login
    task = s.tasks.get(pdu.itt)
    if login is not None:
        if pdu.itt != login.itt:
            desk.seq_event(d, pdu, s, "unexpected_response", login.itt, pdu.itt,
                            "Login Response ITT differs from the login's ITT", pdu.itt)
        joined = text_series.ltds(d, c, s, pdu)
        if joined is not None:
            login.keys["target"].extend(joined)
            desk.issues(d, c, pdu, login.neg.feed("target", joined))
            keys = key_map(joined)
            if "TargetPortalGroupTag" in keys and login.kind in ("leading", "session_reinstatement", "unknown"):
                try:
                    s.tpgt = int(keys["TargetPortalGroupTag"], 0)
                except ValueError:
                    pass
            if "TargetAlias" in keys:
                s.target_alias = keys["TargetAlias"]
    if pdu.status_class == 0:  # numbering fields are valid only for class 0 (§11.13)
        gap = c.statsn.advance(pdu.statsn)
        if gap is not None:
            desk.seq_event(d, pdu, s, "statsn_gap", gap, pdu.statsn, "Login Response StatSN jumped", pdu.itt)
        s.window.update(pdu.expcmdsn, pdu.maxcmdsn)
    inp = connection.classify_pdu(pdu, own_cid=c.cid, logout_for_self=True)
    if inp is ConnInput.LOGIN_RESPONSE_FINAL_OK:
        login_ok(d, c, s, pdu, task)
    elif inp is ConnInput.LOGIN_RESPONSE_REJECT:
        name = login_status_name(pdu.status_class, pdu.status_detail)
        ev = desk.events(pdu, f"Login Response Status-Class {pdu.status_class} ({name})")
        c.login_status = (pdu.status_class, pdu.status_detail)
        machines.conn_both(d, c, inp, pdu.frame, pdu.ts_ns, ev, settle=False)
        login_failed(d, c, pdu.frame, pdu.ts_ns, pdu, ev["target"])
        machines.settle_conn(d, c, pdu.frame, pdu.ts_ns, ev["target"])
    else:
        if task is not None:
            task.touch(pdu.frame, pdu.ts_ns)
        machines.conn_both(d, c, ConnInput.LOGIN_RESPONSE_PARTIAL, pdu.frame, pdu.ts_ns,
                        desk.events(pdu, "Login Response (not final)"))


def adopt_login(d: Desk, c: Conn, pdu: LoginResponse) -> None:
    """Capture began inside a login phase: take identity from the response."""
    login = Login(pdu.itt, pdu.isid, pdu.tsih, c.cid or 0, "unknown", pdu.frame, pdu.ts_ns)
    s = d.by_tsih.get((pdu.isid, pdu.tsih)) if pdu.tsih else None
    if s is None:
        s = c.session or identity.new_session(d, pdu.frame, pdu.ts_ns, True)
        s.isid = pdu.isid
    c.login = login
    identity.attach(d, c, s)
    t = Task(s.id, c.id, pdu.itt, "login", pdu.first_frame, pdu.ts_ns, True, None, None, partial=True)
    s.tasks.setdefault(pdu.itt, t)


def login_keys(c: Conn, s: Session | None, login: Login, frame: int, ts: int, outcome: str) -> LoginKeys:
    """The LoginKeys record of a login that ends now (with the complete pairs of a C-bit text still open)."""
    keys = {side: list(login.keys[side]) for side in SIDES}
    unfinished: list[str] = []
    for direction, joiner in c.ltds.items():
        if joiner.open:
            side = "initiator" if direction == I2T else "target"
            keys[side].extend(joiner.complete_pairs())
            unfinished.append(side)
    return LoginKeys(frame, ts, s.id if s is not None else None, c.id, login.itt, login.start_frame, outcome,
                     without_secrets(keys["initiator"]), without_secrets(keys["target"]), tuple(sorted(unfinished)))


def known_values(neg: Negotiation, keys: Iterable[str], whole: bool) -> dict[str, str]:
    """The keys' values as negotiated or declared; an undeclared key has its default (§13) only
    when the whole login was captured (``whole``), else it is unknown and left out."""
    out: dict[str, str] = {}
    for k in keys:
        v = neg.value(k) if whole else (neg.results.get(k) or neg.declared_by("initiator", k)
                                        or neg.declared_by("target", k))
        if v is not None:
            out[k] = v
    return out


def conn_params(c: Conn, login: Login, complete: bool = True) -> None:
    """The connection's parameters (§13.12, §12.1 AuthMethod) from ``login``'s negotiation as far
    as it went: what was not seen is left out (unknown), never filled with its default. A login
    that did not complete (failed, redirected, cut by the capture end) has no defaults either:
    the keys it had not settled yet were still open."""
    neg, whole = login.neg, login.start_seen and complete
    mi = neg.max_recv_dsl("initiator") if whole or "MaxRecvDataSegmentLength" in neg.declared["initiator"] else None
    mt = neg.max_recv_dsl("target") if whole or "MaxRecvDataSegmentLength" in neg.declared["target"] else None
    c.mrdsl_initiator, c.mrdsl_target = mi, mt
    c.params = known_values(neg, CONNECTION_PARAMS, whole)
    if whole or "AuthMethod" in neg.results or neg.chap_used:
        c.params["AuthMethod"] = neg.auth_method()
    if mi is not None:
        c.params["MaxRecvDataSegmentLength_initiator"] = str(mi)
    if mt is not None:
        c.params["MaxRecvDataSegmentLength_target"] = str(mt)
    if whole or neg.chap_used:
        c.params["chap_used"] = "Yes" if neg.chap_used else "No"
    if neg.chap_used:
        c.params["chap_mutual"] = "Yes" if neg.chap_mutual else "No"
        if neg.chap_algorithm:
            c.params["chap_algorithm"] = neg.chap_algorithm


def login_ok(d: Desk, c: Conn, s: Session, pdu: LoginResponse, task: Task | None) -> None:
    login = c.login
    neg = login.neg if login is not None else Negotiation()
    desk.issues(d, c, pdu, neg.close())
    if login is not None:
        d.out.append(login_keys(c, s, login, pdu.frame, pdu.ts_ns, "succeeded"))
    leading = login is not None and login.kind in ("leading", "session_reinstatement")
    if pdu.tsih and (s.tsih is None or leading):
        identity.unindex(d, s)
        s.tsih = pdu.tsih
        if s.isid is None:
            s.isid = pdu.isid
        identity.index(d, s)
    if login is not None:
        # Connection parameters (§13.1, §13.12): digests and MaxRecvDataSegmentLength each way.
        c.header_digest = DigestFact(neg.digest("HeaderDigest"), "negotiated")
        c.data_digest = DigestFact(neg.digest("DataDigest"), "negotiated")
        conn_params(c, login)
        c.params_known = True
        if leading:
            s.params = known_values(neg, SESSION_PARAMS, login.start_seen)
            for k in ("AuthMethod", "chap_used"):
                if k in c.params:
                    s.params[k] = c.params[k]
            s.params_known = True
            s.session_type = (neg.declared_by("initiator", "SessionType") or s.session_type
                              or ("Normal" if login.start_seen else None))
            s.initiator_alias = neg.declared_by("initiator", "InitiatorAlias") or s.initiator_alias
            s.target_alias = neg.declared_by("target", "TargetAlias") or s.target_alias
            for key, attr in (("DefaultTime2Wait", "time2wait"), ("DefaultTime2Retain", "time2retain")):
                if key in neg.results:
                    try:
                        setattr(s, attr, int(neg.results[key], 0))
                        s.t2_source = "negotiated"
                    except ValueError:
                        pass
    if login is not None and login.kind in ("leading", "session_reinstatement", "unknown"):
        identity.identified(d, s, c, pdu.frame, pdu.ts_ns)
    ev = desk.events(pdu, "final Login Response, Status-Class 0,")
    machines.conn_both(d, c, ConnInput.LOGIN_RESPONSE_FINAL_OK, pdu.frame, pdu.ts_ns, ev, settle=False)
    c.login_status = (0, 0)
    if any(c.state[side] is ConnState.S5_LOGGED_IN for side in SIDES):
        machines.sess_both(d, s, SessInput.CONN_LOGGED_IN, pdu.frame, pdu.ts_ns,
                        f"connection {c.id} reached LOGGED_IN (frame {pdu.frame})")
    if login is not None:
        d.out.append(ConnectionParams(pdu.frame, pdu.ts_ns, c.id, c.header_digest.crc32c, c.data_digest.crc32c,
                                      c.mrdsl_initiator, c.mrdsl_target, c.header_digest.source,
                                      c.data_digest.source))
    if task is not None:
        task_book.emit_task(d, s, task, task.finish(pdu.frame, pdu.ts_ns, "completed", login_status=(0, 0),
                                             response_name="Success"))
    c.login = None
    text_series.ltds_end(d, c, pdu, "the target ended the login phase")
    if login is not None:
        if login.old_conn is not None:
            reinstatement.conn_reinstated(d, c, login, pdu)
        if login.old_session is not None:
            d.reinstating.pop(login.old_session.id, None)
            reinstatement.session_reinstated(d, c, s, login, pdu)
    machines.settle_conn(d, c, pdu.frame, pdu.ts_ns, ev["target"])


#: Redirected logins remembered for linking their follow-up login (our bound, not the RFC's).
MAX_REDIRECTS = 1024


def follow_redirect(d: Desk, s: Session, iname: str | None, tname: str | None) -> None:
    """A new session's login following a redirect of the same initiator to the same target
    (§11.13.5: the initiator logs in again at the TargetAddress it was given) is linked to it."""
    old_id = d.redirects.pop((iname, tname), None) if iname is not None else None
    old = d.sessions.get(old_id) if old_id is not None else None
    if old is None or old is s:
        return
    s.redirected_from, old.redirect_followed_by = old.id, s.id


def redirected(d: Desk, c: Conn, s: Session, login: Login) -> str | None:
    """Note a Status-Class 1 answer (§11.13.5): the TargetAddress given, and the session waiting
    for its follow-up login. Returns the TargetAddress (None when the target gave none)."""
    addr = None
    for k, v in login.keys["target"]:
        if k == "TargetAddress":
            addr = v
    c.redirected_to = addr
    if login.kind in ("leading", "session_reinstatement", "unknown"):
        s.redirected_to = addr
        key = (s.initiator_name, s.target_name)
        if key[0] is not None:
            d.redirects.pop(key, None)
            d.redirects[key] = s.id
            while len(d.redirects) > MAX_REDIRECTS:
                d.redirects.pop(next(iter(d.redirects)))
    return addr


def partial_params(c: Conn, s: Session | None, login: Login) -> None:
    """Negotiation results of a login that never reached full feature phase, as far as it went
    (§6.6 / §13: an answered key is settled even if the login later fails or is cut)."""
    if c.params_known:
        return
    conn_params(c, login, complete=False)
    if s is not None and not s.params_known and login.kind in ("leading", "session_reinstatement", "unknown"):
        s.params = known_values(login.neg, SESSION_PARAMS, False)
        for k in ("AuthMethod", "chap_used"):
            if k in c.params:
                s.params[k] = c.params[k]


def login_failed(d: Desk, c: Conn, frame: int, ts: int, pdu: LoginResponse | None, cause: str) -> None:
    login, s = c.login, c.session
    c.login = None
    if login is not None:
        partial_params(c, s, login)
    if login is not None:
        d.out.append(login_keys(c, s, login, frame, ts, "failed" if pdu is not None else "cut"))
    if pdu is not None:
        text_series.ltds_end(d, c, pdu, "the target failed the login")
    if login is None or s is None:
        return
    # A redirect (Status-Class 1, §11.13.5) is not a failure: the login goes on at another address.
    redirect = pdu is not None and pdu.status_class == 1
    if redirect:
        redirected(d, c, s, login)
    ev = f"login on {c.id} {'redirected' if redirect else 'failed'} ({cause})"
    machines.sess_both(d, s, SessInput.LOGIN_FAILED, frame, ts, ev)
    ending = "redirected" if redirect else "login_failed"
    if login.kind in ("leading", "session_reinstatement") and s.ended == "open":
        s.ended = ending
    c.ended = ending
    task = s.tasks.get(login.itt)
    if task is not None:
        if pdu is not None:
            task_book.emit_task(d, s, task, task.finish(
                frame, ts, ending if redirect else "failed", login_status=(pdu.status_class, pdu.status_detail),
                response=pdu.status_class << 8 | pdu.status_detail,
                response_name=login_status_name(pdu.status_class, pdu.status_detail)))
        else:
            task_book.end_unanswered(d, s, task, frame, ts, "open_at_conn_drop", task_book.drop_cause(c), cause)
    if login.old_conn is not None:
        old = login.old_conn
        for side in SIDES:
            if old.cleanup[side] is R2:
                machines.cleanup_step(d, old, side, CleanupInput.CLEANUP_FAILED, frame, ts,
                                   f"CSM-I: reinstatement login on {c.id} ended in FREE")
            elif side == "target" and old.state[side] in FFP_STATES:
                machines.conn_step(d, old, side, ConnInput.REINSTATEMENT_FAILED, frame, ts,
                                f"connection reinstatement on {c.id} failed")
        machines.settle_conn(d, old, frame, ts, "failed reinstatement")
        d.out.append(reinstatement.reinst_record(d, c, login, frame, ts, "failed"))
    if pdu is not None and (pdu.status_class, pdu.status_detail) == (2, 0x0A) and login.kind != "leading":
        session_gone(d, s, frame, ts, pdu)
    if login.old_session is not None:
        old_s = login.old_session
        d.reinstating.pop(old_s.id, None)
        for x in old_s.conns:
            if x.state["target"] in FFP_STATES:
                machines.conn_step(d, x, "target", ConnInput.REINSTATEMENT_FAILED, frame, ts,
                                f"session reinstatement by {s.id} failed")
                machines.settle_conn(d, x, frame, ts, "failed session reinstatement")
        d.out.append(reinstatement.reinst_record(d, c, login, frame, ts, "failed"))
        if old_s.live():
            identity.index(d, old_s)
    if s.mid_stream is False and s.state["target"] is Q1 and s.state["initiator"] is Q1:
        identity.unindex(d, s)


def session_gone(d: Desk, s: Session, frame: int, ts: int, pdu: LoginResponse) -> None:
    """Login Status 0x020a "Session does not exist" for a session we thought FAILED (or alive):
    the target has discarded it and its connections' state (§11.13.5); its side is FREE."""
    why = (f"the target answered Login Status 0x020a ({login_status_name(2, 0x0A)}) at frame {pdu.frame}: "
           f"it no longer has this session")
    for x in s.conns:
        if x.cleanup["target"] is R2:
            machines.cleanup_step(d, x, "target", CleanupInput.CLEANUP_FAILED, frame, ts, why)
        if x.cleanup["target"] is R1:
            machines.cleanup_step(d, x, "target", CleanupInput.STATE_TIMEOUT, frame, ts,
                               f"{why}; its connection state was discarded", True, "discarded")
    if s.state["target"] is SessState.Q5_IN_CONTINUE:
        machines.sess_step(d, s, "target", SessInput.LOGIN_FAILED, frame, ts, why)
    if s.state["target"] is Q4:
        machines.sess_step(d, s, "target", SessInput.SESSION_TIMEOUT, frame, ts, f"{why}: session state discarded",
                        True)
