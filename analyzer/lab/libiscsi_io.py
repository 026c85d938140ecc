"""A small libiscsi initiator (ctypes over libiscsi.so.7) for exactly-sized WRITE(10)/READ(10) commands.

The libiscsi utilities cannot write a chosen amount of data (iscsi-perf only reads; the iscsi-test-cu write
suites move tens of MB), so the lab runs this module inside the namespace:

    python -m analyzer.lab.libiscsi_io --initiator IQN URL write --lba 0 --blocks 128 --count 4

It logs in (libiscsi does the login, digests, CHAP, R2T handling), issues the commands one after another,
logs out, and exits 0 only if every command returned GOOD.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import sys
from dataclasses import dataclass
from urllib.parse import unquote

#: enum iscsi_session_type / iscsi_header_digest (libiscsi include/iscsi.h).
ISCSI_SESSION_NORMAL = 2
HEADER_DIGESTS = {"none": 0, "none-crc32c": 1, "crc32c-none": 2, "crc32c": 3}
SCSI_STATUS_GOOD = 0


@dataclass(frozen=True)
class IscsiUrl:
    """The parts of `iscsi://[user%password@]host[:port]/iqn/lun[?header_digest=...]`."""

    portal: str
    target: str
    lun: int
    user: str | None = None
    password: str | None = None
    header_digest: str | None = None


def parse_url(url: str) -> IscsiUrl:
    """Parse a libiscsi LUN URL (raises ValueError when it is not one)."""
    if not url.startswith("iscsi://"):
        raise ValueError(f"not an iscsi:// URL: {url}")
    rest, _, query = url[len("iscsi://"):].partition("?")
    user = password = None
    if "@" in rest:
        cred, rest = rest.rsplit("@", 1)
        user, _, pw = cred.partition("%")
        password = pw or None
    portal, _, path = rest.partition("/")
    target, _, lun = path.rpartition("/")
    if not portal or not target or not lun.isdigit():
        raise ValueError(f"expected iscsi://host[:port]/<target-iqn>/<lun>: {url}")
    digest = None
    for arg in filter(None, query.split("&")):
        key, _, value = arg.partition("=")
        if key == "header_digest":
            if value.lower() not in HEADER_DIGESTS:
                raise ValueError(f"header_digest must be one of {', '.join(HEADER_DIGESTS)}")
            digest = value.lower()
    return IscsiUrl(portal, unquote(target), int(lun), user, password, digest)


def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("iscsi") or "libiscsi.so.7"
    lib = ctypes.CDLL(name)
    vp, cp, i, u32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32
    lib.iscsi_create_context.restype = vp
    lib.iscsi_create_context.argtypes = [cp]
    lib.iscsi_get_error.restype = cp
    lib.iscsi_get_error.argtypes = [vp]
    for fn, args in (("iscsi_set_targetname", [vp, cp]), ("iscsi_set_session_type", [vp, i]),
                     ("iscsi_set_header_digest", [vp, i]), ("iscsi_set_initiator_username_pwd", [vp, cp, cp]),
                     ("iscsi_full_connect_sync", [vp, cp, i]), ("iscsi_logout_sync", [vp]),
                     ("iscsi_destroy_context", [vp])):
        getattr(lib, fn).restype = i
        getattr(lib, fn).argtypes = args
    lib.iscsi_write10_sync.restype = vp
    lib.iscsi_write10_sync.argtypes = [vp, i, u32, ctypes.c_char_p, u32, i, i, i, i, i, i]
    lib.iscsi_read10_sync.restype = vp
    lib.iscsi_read10_sync.argtypes = [vp, i, u32, u32, i, i, i, i, i, i]
    lib.scsi_free_scsi_task.restype = None
    lib.scsi_free_scsi_task.argtypes = [vp]
    return lib


def run_io(url: IscsiUrl, initiator: str, op: str, lba: int, blocks: int, count: int,
           block_size: int = 512) -> int:
    """Log in, issue `count` READ(10)/WRITE(10) of `blocks` blocks at consecutive LBAs, log out.

    Returns the number of commands that did not complete with GOOD.
    """
    lib = _lib()
    ctx = lib.iscsi_create_context(initiator.encode())
    if not ctx:
        raise RuntimeError("iscsi_create_context failed")
    try:
        lib.iscsi_set_targetname(ctx, url.target.encode())
        lib.iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL)
        lib.iscsi_set_header_digest(ctx, HEADER_DIGESTS[url.header_digest or "none-crc32c"])
        if url.user is not None:
            lib.iscsi_set_initiator_username_pwd(ctx, url.user.encode(), (url.password or "").encode())
        if lib.iscsi_full_connect_sync(ctx, url.portal.encode(), url.lun) != 0:
            raise RuntimeError(f"login failed: {lib.iscsi_get_error(ctx).decode(errors='replace')}")
        failures = 0
        length = blocks * block_size
        for n in range(count):
            pos = lba + n * blocks
            if op == "write":
                data = bytes((pos + k) & 0xFF for k in range(256)) * (length // 256 + 1)
                task = lib.iscsi_write10_sync(ctx, url.lun, pos, data[:length], length, block_size, 0, 0, 0, 0, 0)
            else:
                task = lib.iscsi_read10_sync(ctx, url.lun, pos, length, block_size, 0, 0, 0, 0, 0)
            if not task:
                raise RuntimeError(f"{op} failed: {lib.iscsi_get_error(ctx).decode(errors='replace')}")
            status = ctypes.cast(task, ctypes.POINTER(ctypes.c_int))[0]  # struct scsi_task starts with status
            lib.scsi_free_scsi_task(task)
            print(f"{op.upper()}(10) lba={pos} blocks={blocks} status={status}")
            failures += status != SCSI_STATUS_GOOD
        lib.iscsi_logout_sync(ctx)
        return failures
    finally:
        lib.iscsi_destroy_context(ctx)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (see module docstring); exit status 0 only if every command was GOOD."""
    parser = argparse.ArgumentParser(prog="python -m analyzer.lab.libiscsi_io", description=__doc__.splitlines()[0])
    parser.add_argument("--initiator", required=True)
    parser.add_argument("url")
    parser.add_argument("op", choices=["write", "read"])
    parser.add_argument("--lba", type=int, default=0)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        failures = run_io(parse_url(args.url), args.initiator, args.op, args.lba, args.blocks, args.count)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"libiscsi_io: {exc}", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
