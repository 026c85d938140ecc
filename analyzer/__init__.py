"""iscsi-analyzer: a Wireshark-style iSCSI (RFC 7143) protocol analyzer."""

__version__ = "0.1.0"
