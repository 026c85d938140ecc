"""iscsi-analyzer: a Wireshark-style iSCSI (RFC 7143) protocol analyzer."""

__version__ = "0.1.0"

from analyzer import _native  # noqa: E402  (compiled hot path or pure Python: see _native.py)

_native.install()


def __getattr__(name: str) -> object:
    # Lazy: `import analyzer` stays light (no pandas) for the CLI's fast commands.
    if name in ("analyze", "analyze_many", "load"):
        from analyzer import api

        return getattr(api, name)
    raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
