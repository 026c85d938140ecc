"""Login, logout, connection and session findings (RFC 7143 §6.3, §7.5, §8, §11.9, §11.12-§11.15).

Kinds: login_failed, login_redirected, no_authentication, logout_failed, logout_unanswered,
connection_dropped, session_failed, cleanup_wait_stuck, session_reinstated,
connection_reinstated, duplicate_session, async_event.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from analyzer.anomalies.context import FFP_STATES, NS, Context, host_of, secs
from analyzer.anomalies.rules.base import Handler, Rule
from analyzer.iscsi.opcodes import (
    async_event_name,
    login_status_code,
    login_status_name,
    logout_reason_name,
    logout_response_name,
)
from analyzer.iscsi.scsi import sense_summary
from analyzer.records import (
    AsyncMessage,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    TcpClosed,
    TcpFin,
    TcpRst,
)
from analyzer.state.events import CleanupDeadline, CleanupEnded, Reinstatement, TaskRecord, Transition

#: Logout Response codes that are errors rather than warnings (§11.15.1: 3 = cleanup failed)
_LOGOUT_ERRORS = frozenset({3})
#: a Logout still open at capture end is reported once it has waited this long
LOGOUT_WAIT_NS = 2 * NS
#: two reinstatements of a LOGGED_IN session of the same nexus within this window = a fight
FIGHT_WINDOW_NS = 120 * NS


def _task_ops(tasks: list[TaskRecord]) -> str:
    """"READ(16) x3, WRITE(10)" (most common first)."""
    ops = Counter(t.cdb_name or t.kind.upper() if t.kind == "scsi" else _KIND_WORD.get(t.kind, t.kind)
                  for t in tasks)
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in ops.most_common())


_KIND_WORD = {"tmf": "task management", "text": "Text", "nop": "NOP-Out ping", "logout": "Logout",
              "login": "Login"}


class LoginRule(Rule):
    """login_failed, login_redirected, no_authentication."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._noauth_reported: set[str] = set()

    def handlers(self) -> dict[type, Handler]:
        return {LoginResponse: self.login_response, TaskRecord: self.task}

    def login_response(self, pdu: LoginResponse) -> None:
        ctx = self.ctx
        c = ctx.conn(pdu.conn)
        frames = list(c.login_frames) or [pdu.frame]
        keys = c.login_keys
        who = keys.get("InitiatorName")
        target = keys.get("TargetName")
        stype = keys.get("SessionType", "Normal")
        what = f"{stype} session login" + (f" of {who}" if who else "") + (f" to {target}" if target else "")
        name = login_status_name(pdu.status_class, pdu.status_detail)
        code = login_status_code(pdu.status_class, pdu.status_detail)
        if pdu.status_class == 1:
            addr = c.login_answer.get("TargetAddress")
            dest = f"to TargetAddress {addr}" if addr else "but gave no TargetAddress (required for class 1)"
            # Frame and time of the same PDU: the redirecting Login Response (the login's frames as evidence).
            ctx.emit("login_redirected", pdu.frame, pdu.ts_ns,
                     f"Login redirected: {name} ({code}); the target sends the {what} {dest}.",
                     conn=pdu.conn, frames=frames)
            ctx.end_login(c)
        elif pdu.status_class >= 2:
            ctx.emit("login_failed", frames[0], pdu.ts_ns, f"Login failed: {name} ({code}) for the {what}.",
                     conn=pdu.conn, frames=frames)
            ctx.end_login(c)
        elif pdu.transit and pdu.nsg == 3:
            self._final_ok(c.conn, pdu, frames)
            ctx.end_login(c)

    def _final_ok(self, conn: str, pdu: LoginResponse, frames: list[int]) -> None:
        ctx = self.ctx
        c = ctx.conn(conn)
        sid = c.session
        stype = c.login_keys.get("SessionType", "Normal")
        if (sid is None or sid in self._noauth_reported or stype != "Normal" or c.login_tsih != 0
                or c.login_first_csg is None or c.auth_used):
            return
        self._noauth_reported.add(sid)
        how = ("skipped the security negotiation stage" if c.login_first_csg == 1
               else f"negotiated AuthMethod={c.auth_answer or 'None'}")
        ctx.emit("no_authentication", frames[0], pdu.ts_ns,
                 f"{ctx.describe_session(sid).capitalize()} logged in without authentication: the login {how}.",
                 session=sid, conn=conn, frames=frames)

    def task(self, t: TaskRecord) -> None:
        if t.kind != "login" or t.outcome != "open_at_conn_drop":
            return
        self.ctx.defer(lambda: self._login_cut(t))

    def forget(self, sid: str | None, conns: frozenset[str]) -> None:
        self._noauth_reported.discard(sid or "")

    def _login_cut(self, t: TaskRecord) -> None:
        ctx = self.ctx
        c = ctx.conn(t.conn)
        how = "the connection closed"
        if c.closed_by is not None:
            side, kind, _ = c.closed_by
            how = f"the {side} {'reset' if kind == 'RST' else 'closed'} the connection ({kind})"
        frames = list(c.login_frames) or [t.first_frame, t.last_frame]
        ctx.emit("login_failed", t.first_frame, t.ts_ns,
                 f"Login did not complete: {how} during the login phase, {secs(t.latency_ns)} after the first "
                 f"Login Request, without a final Login Response.",
                 session=t.session, conn=t.conn, frames=frames, severity="warning")
        ctx.end_login(c)


class LogoutRule(Rule):
    """logout_failed, logout_unanswered."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._requests: dict[tuple[str, int], LogoutRequest] = {}

    def handlers(self) -> dict[type, Handler]:
        return {LogoutRequest: self.request, LogoutResponse: self.response, TaskRecord: self.task}

    def request(self, pdu: LogoutRequest) -> None:
        if len(self._requests) > 10000:
            self._requests.clear()
        self._requests[(pdu.conn, pdu.itt)] = pdu

    def forget(self, sid: str | None, conns: frozenset[str]) -> None:
        if self._requests and conns:
            for key in [k for k in self._requests if k[0] in conns]:
                del self._requests[key]

    def response(self, pdu: LogoutResponse) -> None:
        req = self._requests.pop((pdu.conn, pdu.itt), None)
        if pdu.response == 0:
            return
        asked = (f" to {logout_reason_name(req.reason)}" + (f" (CID {req.cid})" if req.reason != 0 else "")
                 if req is not None else "")
        extra = ""
        if pdu.response in (2, 3):
            extra = (f"; the initiator may retry after Time2Wait {pdu.time2wait} s, within Time2Retain "
                     f"{pdu.time2retain} s")
        self.ctx.emit("logout_failed", req.frame if req else pdu.frame, pdu.ts_ns,
                      f"Logout failed: the target answered the request{asked} with "
                      f"'{logout_response_name(pdu.response)}'{extra}.",
                      conn=pdu.conn, frames=[pdu.frame] + ([req.frame] if req else []),
                      severity="error" if pdu.response in _LOGOUT_ERRORS else "warning")

    def task(self, t: TaskRecord) -> None:
        if t.kind != "logout" or t.outcome not in ("open_at_conn_drop", "open_at_capture_end"):
            return
        req = self._requests.pop((t.conn, t.itt), None)
        what = (f"Logout Request ({logout_reason_name(req.reason)}"
                + (f", CID {req.cid})" if req.reason != 0 else ")") if req is not None else "Logout Request")
        if t.outcome == "open_at_conn_drop":
            msg = f"The {what} got no Logout Response before the connection closed ({secs(t.latency_ns)} later)."
        else:
            if t.latency_ns < LOGOUT_WAIT_NS:
                return
            msg = f"The {what} was still unanswered when the capture ended, {secs(t.latency_ns)} later."
        self.ctx.emit("logout_unanswered", t.first_frame, t.start_ts_ns, msg, session=t.session, conn=t.conn,
                      frames=[t.first_frame, t.last_frame])


@dataclass(slots=True)
class _Drop:
    frame: int
    ts: int
    from_state: str
    reported: bool = False
    severity: str = "warning"
    how: str = ""


@dataclass(slots=True)
class _Episode:
    conn: str
    session: str | None
    frame: int
    ts: int
    deadline: int
    time2wait: int
    time2retain: int
    source: str
    open_tasks: int
    cause: str
    in_cleanup: bool = False
    ended: bool = False
    frames: list[int] = field(default_factory=list)


class ConnectionRule(Rule):
    """connection_dropped, session_failed, cleanup_wait_stuck."""

    timed = True

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._drops: dict[str, _Drop] = {}
        self._dropped_tasks: dict[str, list[TaskRecord]] = {}
        self._episodes: dict[str, _Episode] = {}
        self._open: dict[str, _Episode] = {}
        self._failed_reported: set[tuple[str, int]] = set()

    def handlers(self) -> dict[type, Handler]:
        return {Transition: self.transition, TcpFin: self.tcp_down, TcpRst: self.tcp_down,
                TcpClosed: self.tcp_closed, TaskRecord: self.task, CleanupDeadline: self.deadline,
                CleanupEnded: self.cleanup_ended}

    def forget(self, sid: str | None, conns: frozenset[str]) -> None:
        for cn in conns:
            self._drops.pop(cn, None)
            self._dropped_tasks.pop(cn, None)
            self._episodes.pop(cn, None)
            self._open.pop(cn, None)
        if sid is not None and self._failed_reported:
            self._failed_reported = {k for k in self._failed_reported if k[0] != sid}

    # ---------------------------------------------------------------- connection_dropped

    def transition(self, t: Transition) -> None:
        if t.machine == "connection" and t.conn is not None:
            if (t.to_state == "CLEANUP_WAIT" and t.from_state in ("LOGGED_IN", "LOGOUT_REQUESTED")
                    and not t.inferred):
                d = self._drops.get(t.conn)
                if d is None or d.reported and d.frame != t.frame:
                    self._drops[t.conn] = _Drop(t.frame, t.ts_ns, t.from_state)
        elif t.machine == "cleanup" and t.conn is not None and t.side == "target":
            ep = self._open.get(t.conn)
            if ep is not None:
                ep.in_cleanup = t.to_state == "IN_CLEANUP"
                ep.frames.append(t.frame)
        elif (t.machine == "session" and t.side == "target" and t.session is not None
              and t.to_state == "FAILED" and not t.inferred and t.from_state in ("LOGGED_IN", "UNKNOWN")):
            # (IN_CONTINUE -> FAILED is a failed continuation of an already failed session)
            self.ctx.defer(lambda: self._session_failed(t))

    def task(self, t: TaskRecord) -> None:
        # target NOP-In pings are nop_unanswered's business, not tasks lost by a drop
        if t.outcome in ("open_at_conn_drop", "lost_in_capture_gap") and t.kind not in ("login", "logout", "nop_in"):
            lst = self._dropped_tasks.setdefault(t.conn, [])
            if lst and lst[-1].frame != t.frame:
                # tasks cut by capture gaps earlier are not part of a later drop: keep memory bounded
                lst[:] = [x for x in lst if x.outcome == "open_at_conn_drop"]
            if len(lst) < 100000:
                lst.append(t)

    def tcp_down(self, rec: TcpFin | TcpRst) -> None:
        self.ctx.defer(lambda: self._check_drop(rec.conn))

    def tcp_closed(self, rec: TcpClosed) -> None:
        if rec.reason in ("fin", "rst"):
            self.ctx.defer(lambda: self._check_drop(rec.conn))

    def _check_drop(self, conn: str) -> None:
        d = self._drops.get(conn)
        if d is None or d.reported:
            return
        ctx = self.ctx
        c = ctx.conn(conn)
        d.reported = True
        tasks = [t for t in self._dropped_tasks.pop(conn, []) if t.end_ts_ns >= d.ts - 1]
        lost = [t for t in tasks if t.outcome == "open_at_conn_drop"]
        doubtful = [t for t in tasks if t.outcome == "lost_in_capture_gap"]
        side, kind, close_frame = c.closed_by if c.closed_by is not None else ("", "", d.frame)
        if side:
            how = f"the {side} {'reset' if kind == 'RST' else 'closed'} the TCP connection ({kind})"
        else:
            how = "the TCP connection was closed"
        d.how = how
        asy = c.last_async if c.last_async is not None and c.last_async.ts_ns <= d.ts + NS else None
        msg = f"Connection dropped without logout: {how} while it was {d.from_state}"
        if asy is not None:
            msg += (f", after the target's Async Message '{async_event_name(asy.async_event)}' "
                    f"(frame {asy.frame})")
        if lost:
            msg += (f"; {len(lost)} task{'s' if len(lost) != 1 else ''} in flight "
                    f"{'were' if len(lost) != 1 else 'was'} lost ({_task_ops(lost)})")
        else:
            msg += "; no task was in flight"
        if doubtful:
            msg += (f"; {len(doubtful)} more task{'s' if len(doubtful) != 1 else ''} may have been answered in "
                    f"data the capture lost")
        if asy is not None:
            sev = "warning"
        elif side == "initiator" and kind == "FIN" and not lost:
            sev = "info"
        elif side == "target" and lost:
            sev = "error"
        else:
            sev = "warning"
        d.severity = sev
        frames = [d.frame, close_frame] + ([asy.frame] if asy is not None else []) + [t.first_frame for t in lost]
        ctx.emit("connection_dropped", min(d.frame, close_frame), d.ts, msg + ".", conn=conn, frames=frames,
                 severity=sev)

    # ---------------------------------------------------------------- session_failed

    def _session_failed(self, t: Transition) -> None:
        assert t.session is not None
        key = (t.session, t.frame)
        if key in self._failed_reported:
            return
        self._failed_reported.add(key)
        ctx = self.ctx
        s = ctx.session(t.session)
        for cn in s.conns:  # the drop behind this failure may be waiting in the same frame's checks
            d = self._drops.get(cn)
            if d is not None and not d.reported and d.frame == t.frame and ctx.conn(cn).closed_by is not None:
                self._check_drop(cn)
        drop = next((self._drops[cn] for cn in s.conns if cn in self._drops and self._drops[cn].frame == t.frame
                     and self._drops[cn].reported), None)
        ep = next((self._episodes[cn] for cn in s.conns if cn in self._episodes
                   and self._episodes[cn].frame == t.frame), None)
        sev = "info" if drop is not None and drop.severity == "info" else "warning"
        why = f"its last connection dropped ({drop.how})" if drop is not None else (
            f"its last full-feature connection was lost ({t.event})")
        keep = (f"; the target keeps the session for Time2Wait + Time2Retain = {ep.time2wait} + {ep.time2retain} s"
                f" for a reinstatement or continuation" if ep is not None else "")
        ctx.emit("session_failed", t.frame, t.ts_ns,
                 f"{ctx.describe_session(t.session).capitalize()} failed: {why}{keep}.",
                 session=t.session, severity=sev)

    # ---------------------------------------------------------------- cleanup_wait_stuck

    def deadline(self, rec: CleanupDeadline) -> None:
        ep = self._open.get(rec.conn)
        if ep is not None and not ep.ended:
            if rec.side == "target":  # the target's view decides what happens to the tasks
                ep.open_tasks = max(ep.open_tasks, rec.open_tasks)
            return
        ep = _Episode(rec.conn, rec.session, rec.frame, rec.ts_ns, rec.deadline_ts_ns, rec.time2wait,
                      rec.time2retain, rec.source, rec.open_tasks, rec.cause, frames=[rec.frame])
        self._open[rec.conn] = ep
        self._episodes[rec.conn] = ep

    def cleanup_ended(self, rec: CleanupEnded) -> None:
        ep = self._open.pop(rec.conn, None)
        if ep is None or ep.ended:
            return
        ep.ended = True
        if rec.outcome != "timed_out":
            return
        tasks = (f"the {ep.open_tasks} task{'s' if ep.open_tasks != 1 else ''} open on it were dropped without "
                 f"recovery" if ep.open_tasks else "no task was open on it")
        self.ctx.emit(
            "cleanup_wait_stuck", ep.frame, ep.ts,
            f"Connection stayed in CLEANUP_WAIT for {secs(rec.waited_ns)} after {ep.cause} with no logout or "
            f"reinstatement; its state timed out as RFC 7143 prescribes ({self._window(ep)}), and {tasks}.",
            session=rec.session or ep.session, conn=rec.conn, frames=ep.frames + [rec.frame],
            severity="warning" if ep.open_tasks else "info")

    @staticmethod
    def _window(ep: _Episode) -> str:
        src = {"negotiated": "negotiated", "default": "defaults", "logout_response": "from the Logout Response",
               "async_event": "from the Async Message"}.get(ep.source, ep.source)
        return f"Time2Wait {ep.time2wait} s + Time2Retain {ep.time2retain} s, {src}"

    def on_time(self, now: int) -> None:
        if not self._open:
            return
        for ep in list(self._open.values()):
            if ep.in_cleanup and now > ep.deadline:
                self._stuck(ep, now, at_end=False)

    def _stuck(self, ep: _Episode, now: int, *, at_end: bool) -> None:
        ep.ended = True
        self._open.pop(ep.conn, None)
        where = "a logout or reinstatement for it started but did not finish" if ep.in_cleanup else (
            "no logout or reinstatement resolved it")
        tail = " and was still unresolved when the capture ended" if at_end else ""
        self.ctx.emit(
            "cleanup_wait_stuck", ep.frame, ep.ts,
            f"Connection entered CLEANUP_WAIT after {ep.cause} and {where} within its cleanup window "
            f"({self._window(ep)}); it has been waiting {secs(now - ep.ts)}{tail}.",
            session=ep.session, conn=ep.conn, frames=ep.frames, severity="warning")

    def finish(self, ts_ns: int) -> None:
        now = max(ts_ns, self.ctx.now)
        for ep in list(self._open.values()):
            if now >= ep.deadline:
                self._stuck(ep, now, at_end=True)
                continue
            ep.ended = True
            self.ctx.emit(
                "cleanup_wait_stuck", ep.frame, ep.ts,
                f"Connection was still in CLEANUP_WAIT when the capture ended, {secs(now - ep.ts)} after "
                f"{ep.cause} and {secs(ep.deadline - now)} before its cleanup deadline ({self._window(ep)}): "
                f"the capture is too short to tell whether it was recovered.",
                session=ep.session, conn=ep.conn, frames=ep.frames, severity="info")
        self._open.clear()


class ReinstatementRule(Rule):
    """session_reinstated, connection_reinstated, duplicate_session."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._fights: dict[tuple[object, ...], list[int]] = {}
        self._live: dict[tuple[str, str], set[str]] = {}
        #: sessions a successful session reinstatement replaced (their close may be confirmed later)
        self._replaced: set[str] = set()
        self._max_reported: dict[tuple[str, str], int] = {}

    def handlers(self) -> dict[type, Handler]:
        return {Reinstatement: self.reinstatement, Transition: self.transition}

    def forget(self, sid: str | None, conns: frozenset[str]) -> None:
        if sid is not None:
            self._replaced.discard(sid)
        for names, live in list(self._live.items()):  # (a set empties when its sessions leave LOGGED_IN)
            live.discard(sid or "")
            if not live:
                del self._live[names]
        # A fight needs two reinstatements within FIGHT_WINDOW_NS: older times can never count again.
        now = self.ctx.now
        for key in [k for k, times in self._fights.items() if not times or now - times[-1] > FIGHT_WINDOW_NS]:
            del self._fights[key]

    def reinstatement(self, r: Reinstatement) -> None:
        ctx = self.ctx
        frames = [r.start_frame, r.frame]
        if r.kind == "session":
            old = r.old_session
            if r.outcome == "succeeded" and old is not None:
                self._replaced.add(old)
            # the old session's target-side state when the reinstatement login began
            pre = r.old_state_target or (ctx.session_state_before(old, r.frame) if old else "UNKNOWN")
            ident = f"InitiatorName and ISID {r.isid}"
            s = ctx.sessions.get(old) if old else None
            if s is not None and s.initiator_name:
                ident = f"InitiatorName {s.initiator_name} and ISID {r.isid}"
            if r.outcome == "failed":
                ctx.emit("session_reinstated", r.start_frame, r.start_ts_ns,
                         f"Session reinstatement of {old or 'an existing session'} (same {ident}) failed: the login "
                         f"was refused or cut short.", session=r.session, conn=r.conn, frames=frames,
                         severity="error")
                return
            if r.outcome == "incomplete":
                ctx.emit("session_reinstated", r.start_frame, r.start_ts_ns,
                         f"A session reinstatement login for {old or 'an existing session'} (same {ident}) was "
                         f"still running when the capture ended.", session=r.session, conn=r.conn, frames=frames,
                         severity="info")
                return
            live = pre in ("LOGGED_IN", "IN_CONTINUE")
            state = ("the target still had it LOGGED_IN, so the initiator lost it silently or another host uses "
                     "the same ISID" if live else "it had already failed" if pre == "FAILED"
                     else f"its state was {pre}")
            ctx.emit("session_reinstated", r.start_frame, r.start_ts_ns,
                     f"Session {r.session} reinstated {old} (same {ident}): the old session's tasks were "
                     f"terminated; {state}.", session=r.session, conn=r.conn, frames=frames,
                     severity="warning" if live else "info")
            if live and old is not None:
                self._fight(r, old, ident)
        else:
            old_c = r.old_conn
            pre = r.old_state_target or (ctx.conn_state_before(old_c, r.frame) if old_c else "UNKNOWN")
            if r.outcome == "failed":
                ctx.emit("connection_reinstated", r.start_frame, r.start_ts_ns,
                         f"Connection reinstatement of CID {r.cid} (replacing {old_c}) failed.",
                         session=r.session, conn=r.conn, frames=frames, severity="error")
                return
            if r.outcome == "incomplete":
                ctx.emit("connection_reinstated", r.start_frame, r.start_ts_ns,
                         f"A connection reinstatement login for CID {r.cid} (replacing {old_c}) was still running "
                         f"when the capture ended.", session=r.session, conn=r.conn, frames=frames, severity="info")
                return
            live = pre in FFP_STATES
            state = ("the target still had the old connection " + pre + ", so it failed silently (unless the "
                     "target keeps using it: see duplicate_cid_in_session)" if live
                     else "the old connection had already failed" if pre in ("CLEANUP_WAIT", "FREE")
                     else f"the old connection's state was {pre}")
            ctx.emit("connection_reinstated", r.start_frame, r.start_ts_ns,
                     f"Connection CID {r.cid} of session {r.session} was reinstated on a new TCP connection "
                     f"(implicit logout of {old_c}); {state}.", session=r.session, conn=r.conn, frames=frames,
                     severity="warning" if live else "info")

    def _fight(self, r: Reinstatement, old: str, ident: str) -> None:
        ctx = self.ctx
        s_old = ctx.sessions.get(old)
        new_host = host_of(ctx.conn(r.conn).client or "")
        old_hosts = {host_of(ctx.conn(cn).client or "") for cn in (s_old.conns if s_old else [])} - {new_host}
        s_new = ctx.sessions.get(r.session or "")
        key: tuple[object, ...] = (s_new.initiator_name if s_new else None, r.isid,
                                   s_new.target_name if s_new else None)
        times = self._fights.setdefault(key, [])
        times.append(r.start_ts_ns)
        while times and r.start_ts_ns - times[0] > FIGHT_WINDOW_NS:
            times.pop(0)
        if old_hosts:
            msg = (f"Two hosts use the same {ident}: session {r.session} from {new_host} reinstated the live "
                   f"session {old} from {', '.join(sorted(old_hosts))}; each login kills the other's session.")
        elif len(times) >= 2:
            msg = (f"Reinstatement fight: the live session of {ident} was reinstated {len(times)} times within "
                   f"{secs(FIGHT_WINDOW_NS)}; each login kills the previous session and its I/O.")
        else:
            return
        ctx.emit("duplicate_session", r.start_frame, r.start_ts_ns, msg, session=r.session, conn=r.conn,
                 frames=[r.start_frame, r.frame], limit_key=key, limit=3)

    def transition(self, t: Transition) -> None:
        if t.machine != "session" or t.side != "target" or t.session is None:
            return
        s = self.ctx.sessions.get(t.session)
        if s is None or s.initiator_name is None or s.target_name is None or s.session_type == "Discovery":
            return
        key = (s.initiator_name, s.target_name)
        live = self._live.setdefault(key, set())
        if t.to_state == "LOGGED_IN":
            live.add(t.session)
            self.ctx.defer(lambda: self._parallel(key, t))
        else:
            live.discard(t.session)

    def _parallel(self, key: tuple[str, str], t: Transition) -> None:
        ctx = self.ctx
        live = sorted((sid for sid in self._live.get(key, ())
                       if ctx.sessions[sid].state == "LOGGED_IN" and sid not in self._replaced),
                      key=lambda sid: int(sid[1:]) if sid[1:].isdigit() else 0)
        if len(live) < 2 or len(live) <= self._max_reported.get(key, 1):
            return
        self._max_reported[key] = len(live)
        paths = []
        isids: Counter[tuple[int | None, int | None]] = Counter()
        for sid in live:
            s = ctx.sessions[sid]
            isids[(s.isid, s.tpgt)] += 1
            conns = [ctx.conn(cn) for cn in s.conns]
            hops = ", ".join(sorted({f"{host_of(c.client or '?')} -> {c.server or '?'}" for c in conns})) or "?"
            isid = f"{s.isid:012x}" if s.isid is not None else "?"
            paths.append(f"{sid}: {hops} (ISID {isid})")
        dup = [k for k, n in isids.items() if n > 1 and k[0] is not None]
        initiator, target = key
        if dup:
            msg = (f"{len(live)} concurrent sessions from {initiator} to {target} share ISID "
                   f"{dup[0][0]:012x} on the same portal group: {'; '.join(paths)}.")
            sev = "warning"
        else:
            msg = (f"{len(live)} concurrent sessions from {initiator} to {target} (multipath or cloned "
                   f"sessions): {'; '.join(paths)}.")
            sev = "info"
        ctx.emit("duplicate_session", t.frame, t.ts_ns, msg, session=t.session, severity=sev)


#: Async events that ask for action or announce a drop (§11.9.1)
_ASYNC_WARN = frozenset({1, 2, 3, 5})


class AsyncRule(Rule):
    """async_event."""

    def handlers(self) -> dict[type, Handler]:
        return {AsyncMessage: self.message}

    def message(self, pdu: AsyncMessage) -> None:
        ev = pdu.async_event
        name = async_event_name(ev)
        if ev == 0:
            lun = f" on LUN {pdu.lun}" if pdu.lun is not None else ""
            detail = f": {sense_summary(pdu.sense)}" if pdu.sense is not None else " (no sense data)"
            msg = f"SCSI asynchronous event{lun}{detail}."
        elif ev == 1:
            msg = f"The target requests a logout within {pdu.param3} s ({name})."
        elif ev == 2:
            msg = (f"The target announced it will drop connection CID {pdu.param1} "
                   f"(Time2Wait {pdu.param2} s, Time2Retain {pdu.param3} s).")
        elif ev == 3:
            msg = (f"The target announced it will drop all connections of the session "
                   f"(Time2Wait {pdu.param2} s, Time2Retain {pdu.param3} s).")
        elif ev == 4:
            msg = f"The target requests parameter renegotiation within {pdu.param3} s ({name})."
        elif ev >= 248:
            msg = f"Vendor-specific asynchronous event {ev} (vendor code 0x{pdu.async_vcode:02x})."
        else:
            msg = f"Asynchronous Message: {name}."
        self.ctx.emit("async_event", pdu.frame, pdu.ts_ns, msg, conn=pdu.conn,
                      severity="warning" if ev in _ASYNC_WARN else "info", limit_key=(pdu.conn, ev), limit=20)
