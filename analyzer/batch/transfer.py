"""Compact transfer of task results between Dask workers: records pickled as (class, field tuple)."""

from __future__ import annotations

import dataclasses
import io
import pickle
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from analyzer.records import Record

_DISPATCH: dict[type, Callable[[Any], Any]] = {}


def _record_classes() -> list[type]:
    import analyzer.iscsi.pdus
    import analyzer.state.events  # noqa: F401 - defines the state layer's records

    out: list[type] = []
    todo = [Record]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


def _reducer(cls: type) -> Callable[[Any], Any]:
    names = [f.name for f in dataclasses.fields(cls)]
    if len(names) == 1:
        get1 = names[0]
        return lambda r: (cls, (getattr(r, get1),))
    getter = attrgetter(*names)
    return lambda r: (cls, getter(r))


def pack(obj: Any) -> bytes:
    """Pickle with records reduced to (class, field tuple): ~10x faster than their default pickling."""
    if not _DISPATCH:
        for c in _record_classes():
            if dataclasses.is_dataclass(c):
                _DISPATCH[c] = _reducer(c)
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    p.dispatch_table = _DISPATCH
    p.dump(obj)
    return buf.getvalue()


def unpack(data: bytes) -> Any:
    """The inverse of ``pack``."""
    return pickle.loads(data)
