"""SCSI names and decoders: operation codes, CDBs, sense data, status (SPC-4, SBC-3, SSC-4, SMC-3, MMC-6).

Pure and bounded: :func:`decode_cdb` and :func:`decode_sense` accept any bytes and raise
nothing but :class:`DecodeError`. The tables are plain dicts built at import time.

Operation codes depend on the peripheral device type (0x01 is REZERO UNIT on a disk and
REWIND on a tape). The iSCSI layer does not know the device type, so
``decode_cdb(cdb)`` uses a neutral table (a name that covers both when they differ,
SBC field semantics for READ(6)/WRITE(6)); pass ``device_type`` (from INQUIRY byte 0 &
0x1f: 0 disk, 1 tape, 5 CD/DVD, 8 medium changer) to get the device-specific name and
field layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Final

from analyzer.records import Cdb, Sense

from .errors import DecodeError

# --------------------------------------------------------------------------- status


class ScsiStatus(IntEnum):
    """SAM status codes (SAM-5 §5.3)."""

    GOOD = 0x00  #: the command completed
    CHECK_CONDITION = 0x02  #: sense data is available
    CONDITION_MET = 0x04  #: PRE-FETCH: the cache could hold the blocks
    BUSY = 0x08  #: logical unit busy; retry later
    INTERMEDIATE = 0x10  #: obsolete (linked commands)
    INTERMEDIATE_CONDITION_MET = 0x14  #: obsolete (linked commands)
    RESERVATION_CONFLICT = 0x18  #: another I_T nexus holds a reservation
    COMMAND_TERMINATED = 0x22  #: obsolete
    TASK_SET_FULL = 0x28  #: queue full
    ACA_ACTIVE = 0x30  #: an ACA condition exists
    TASK_ABORTED = 0x40  #: aborted by another I_T nexus (TAS=1)


_STATUS_NAMES: Final[Mapping[int, str]] = {
    0x00: "GOOD",
    0x02: "CHECK CONDITION",
    0x04: "CONDITION MET",
    0x08: "BUSY",
    0x10: "INTERMEDIATE",
    0x14: "INTERMEDIATE-CONDITION MET",
    0x18: "RESERVATION CONFLICT",
    0x22: "COMMAND TERMINATED",
    0x28: "TASK SET FULL",
    0x30: "ACA ACTIVE",
    0x40: "TASK ABORTED",
}


def status_name(status: int) -> str:
    """SAM name of a SCSI status byte (``0x02 -> "CHECK CONDITION"``)."""
    return _STATUS_NAMES.get(status, f"Status 0x{status:02x}")


# --------------------------------------------------------------------------- sense keys


class SenseKey(IntEnum):
    """Sense key (SPC-4 Table 50)."""

    NO_SENSE = 0x0  #: no specific sense key (e.g. filemark, EOM, ILI for tape)
    RECOVERED_ERROR = 0x1  #: the command completed with recovery action
    NOT_READY = 0x2  #: the logical unit is not accessible
    MEDIUM_ERROR = 0x3  #: unrecovered medium error
    HARDWARE_ERROR = 0x4  #: non-recoverable hardware failure
    ILLEGAL_REQUEST = 0x5  #: bad CDB or parameter list
    UNIT_ATTENTION = 0x6  #: reset, medium change, parameters changed ...
    DATA_PROTECT = 0x7  #: write protected / access denied
    BLANK_CHECK = 0x8  #: blank or formatted-only medium (tape: end of data)
    VENDOR_SPECIFIC = 0x9  #: vendor specific
    COPY_ABORTED = 0xA  #: EXTENDED COPY aborted
    ABORTED_COMMAND = 0xB  #: the target aborted the command; retry may work
    RESERVED_C = 0xC  #: obsolete (was EQUAL)
    VOLUME_OVERFLOW = 0xD  #: buffered device reached end of partition
    MISCOMPARE = 0xE  #: VERIFY / COMPARE AND WRITE data did not match
    COMPLETED = 0xF  #: SPC-5: completed with sense data (was reserved)


_SENSE_KEY_NAMES: Final[tuple[str, ...]] = (
    "NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR", "ILLEGAL REQUEST",
    "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC", "COPY ABORTED",
    "ABORTED COMMAND", "RESERVED (0xC)", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED",
)


def sense_key_name(key: int) -> str:
    """SPC name of a sense key (``5 -> "ILLEGAL REQUEST"``)."""
    return _SENSE_KEY_NAMES[key & 0x0F]


# --------------------------------------------------------------------------- ASC/ASCQ
# A selection of T10 asc-num.txt (SPC-4 Annex D / t10.org), in sentence case. Format:
# "AAQQ name" one per line. Ranges ("40 NN", "70 NN", "80-FF") are handled in asc_name().
_ASC_TEXT: Final = """
0000 No additional sense information
0001 Filemark detected
0002 End-of-partition/medium detected
0003 Setmark detected
0004 Beginning-of-partition/medium detected
0005 End-of-data detected
0006 I/O process terminated
0007 Programmable early warning detected
0011 Audio play operation in progress
0012 Audio play operation paused
0013 Audio play operation successfully completed
0014 Audio play operation stopped due to error
0015 No current audio status to return
0016 Operation in progress
0017 Cleaning requested
0018 Erase operation in progress
0019 Locate operation in progress
001A Rewind operation in progress
001B Set capacity operation in progress
001C Verify operation in progress
001D ATA pass through information available
001E Conflicting SA creation request
001F Logical unit transitioning to another power condition
0020 Extended copy information available
0100 No index/sector signal
0200 No seek complete
0300 Peripheral device write fault
0301 No write current
0302 Excessive write errors
0400 Logical unit not ready, cause not reportable
0401 Logical unit is in process of becoming ready
0402 Logical unit not ready, initializing command required
0403 Logical unit not ready, manual intervention required
0404 Logical unit not ready, format in progress
0405 Logical unit not ready, rebuild in progress
0406 Logical unit not ready, recalculation in progress
0407 Logical unit not ready, operation in progress
0408 Logical unit not ready, long write in progress
0409 Logical unit not ready, self-test in progress
040A Logical unit not accessible, asymmetric access state transition
040B Logical unit not accessible, target port in standby state
040C Logical unit not accessible, target port in unavailable state
040D Logical unit not ready, structure check required
040E Logical unit not ready, security session in progress
0410 Logical unit not ready, auxiliary memory not accessible
0411 Logical unit not ready, notify (enable spinup) required
0412 Logical unit not ready, offline
0413 Logical unit not ready, SA creation in progress
0414 Logical unit not ready, space allocation in progress
0415 Logical unit not ready, robotics disabled
0416 Logical unit not ready, configuration required
0417 Logical unit not ready, calibration required
0418 Logical unit not ready, a door is open
0419 Logical unit not ready, operating in sequential mode
041A Logical unit not ready, start stop unit command in progress
041B Logical unit not ready, sanitize in progress
041C Logical unit not ready, additional power use not yet granted
041D Logical unit not ready, configuration in progress
041E Logical unit not ready, microcode activation required
041F Logical unit not ready, microcode download required
0420 Logical unit not ready, logical unit reset required
0421 Logical unit not ready, hard reset required
0422 Logical unit not ready, power cycle required
0500 Logical unit does not respond to selection
0600 No reference position found
0700 Multiple peripheral devices selected
0800 Logical unit communication failure
0801 Logical unit communication time-out
0802 Logical unit communication parity error
0803 Logical unit communication CRC error (Ultra-DMA/32)
0804 Unreachable copy target
0900 Track following error
0901 Tracking servo failure
0902 Focus servo failure
0903 Spindle servo failure
0904 Head select fault
0A00 Error log overflow
0B00 Warning
0B01 Warning - specified temperature exceeded
0B02 Warning - enclosure degraded
0B03 Warning - background self-test failed
0B04 Warning - background pre-scan detected medium error
0B05 Warning - background medium scan detected medium error
0B06 Warning - non-volatile cache now volatile
0B07 Warning - degraded power to non-volatile cache
0B08 Warning - power loss expected
0C00 Write error
0C01 Write error - recovered with auto reallocation
0C02 Write error - auto reallocation failed
0C03 Write error - recommend reassignment
0C04 Compression check miscompare error
0C05 Data expansion occurred during compression
0C06 Block not compressible
0C07 Write error - recovery needed
0C08 Write error - recovery failed
0C09 Write error - loss of streaming
0C0A Write error - padding blocks added
0C0B Auxiliary memory write error
0C0C Write error - unexpected unsolicited data
0C0D Write error - not enough unsolicited data
0C0F Defects in error window
0D00 Error detected by third party temporary initiator
0D01 Third party device failure
0D02 Copy target device not reachable
0D03 Incorrect copy target device type
0D04 Copy target device data underrun
0D05 Copy target device data overrun
0E00 Invalid information unit
0E01 Information unit too short
0E02 Information unit too long
0E03 Invalid field in command information unit
1000 ID CRC or ECC error
1001 Logical block guard check failed
1002 Logical block application tag check failed
1003 Logical block reference tag check failed
1100 Unrecovered read error
1101 Read retries exhausted
1102 Error too long to correct
1103 Multiple read errors
1104 Unrecovered read error - auto reallocate failed
1105 L-EC uncorrectable error
1106 CIRC unrecovered error
1107 Data re-synchronization error
1108 Incomplete block read
1109 No gap found
110A Miscorrected error
110B Unrecovered read error - recommend reassignment
110C Unrecovered read error - recommend rewrite the data
110D De-compression CRC error
110E Cannot decompress using declared algorithm
110F Error reading UPC/EAN number
1110 Error reading ISRC number
1111 Read error - loss of streaming
1112 Auxiliary memory read error
1113 Read error - failed retransmission request
1114 Read error - LBA marked bad by application client
1200 Address mark not found for ID field
1300 Address mark not found for data field
1400 Recorded entity not found
1401 Record not found
1402 Filemark or setmark not found
1403 End-of-data not found
1404 Block sequence error
1405 Record not found - recommend reassignment
1406 Record not found - data auto-reallocated
1407 Locate operation failure
1500 Random positioning error
1501 Mechanical positioning error
1502 Positioning error detected by read of medium
1600 Data synchronization mark error
1601 Data sync error - data rewritten
1602 Data sync error - recommend rewrite
1603 Data sync error - data auto-reallocated
1604 Data sync error - recommend reassignment
1700 Recovered data with no error correction applied
1701 Recovered data with retries
1702 Recovered data with positive head offset
1703 Recovered data with negative head offset
1704 Recovered data with retries and/or CIRC applied
1705 Recovered data using previous sector ID
1706 Recovered data without ECC - data auto-reallocated
1707 Recovered data without ECC - recommend reassignment
1708 Recovered data without ECC - recommend rewrite
1709 Recovered data without ECC - data rewritten
1800 Recovered data with error correction applied
1801 Recovered data with error correction & retries applied
1802 Recovered data - data auto-reallocated
1803 Recovered data with CIRC
1804 Recovered data with L-EC
1805 Recovered data - recommend reassignment
1806 Recovered data - recommend rewrite
1807 Recovered data with ECC - data rewritten
1808 Recovered data with linking
1900 Defect list error
1901 Defect list not available
1902 Defect list error in primary list
1903 Defect list error in grown list
1A00 Parameter list length error
1B00 Synchronous data transfer error
1C00 Defect list not found
1C01 Primary defect list not found
1C02 Grown defect list not found
1D00 Miscompare during verify operation
1D01 Miscompare verify of unmapped LBA
1E00 Recovered ID with ECC correction
1F00 Partial defect list transfer
2000 Invalid command operation code
2001 Access denied - initiator pending-enrolled
2002 Access denied - no access rights
2003 Access denied - invalid mgmt ID key
2004 Illegal command while in write capable state
2006 Illegal command while in explicit address mode
2007 Illegal command while in implicit address mode
2008 Access denied - enrollment conflict
2009 Access denied - invalid LU identifier
200A Access denied - invalid proxy token
200B Access denied - ACL LUN conflict
200C Illegal command when not in append-only mode
2100 Logical block address out of range
2101 Invalid element address
2102 Invalid address for write
2103 Invalid write crossing layer jump
2104 Unaligned write command
2105 Write boundary violation
2106 Attempt to read invalid data
2107 Read boundary violation
2200 Illegal function (use 20 00, 24 00, or 26 00)
2300 Invalid token operation, cause not reportable
2301 Invalid token operation, unsupported token type
2302 Invalid token operation, remote token usage not supported
2303 Invalid token operation, remote ROD token creation not supported
2304 Invalid token operation, token unknown
2305 Invalid token operation, token corrupt
2306 Invalid token operation, token revoked
2307 Invalid token operation, token expired
2308 Invalid token operation, token cancelled
2309 Invalid token operation, token deleted
230A Invalid token operation, invalid token length
2400 Invalid field in CDB
2401 CDB decryption error
2404 Security audit value frozen
2405 Security working key frozen
2406 Nonce not unique
2407 Nonce timestamp out of range
2408 Invalid XCDB
2500 Logical unit not supported
2600 Invalid field in parameter list
2601 Parameter not supported
2602 Parameter value invalid
2603 Threshold parameters not supported
2604 Invalid release of persistent reservation
2605 Data decryption error
2606 Too many target descriptors
2607 Unsupported target descriptor type code
2608 Too many segment descriptors
2609 Unsupported segment descriptor type code
260A Unexpected inexact segment
260B Inline data length exceeded
260C Invalid operation for copy source or destination
260D Copy segment granularity violation
260E Invalid parameter while port is enabled
260F Invalid data-out buffer integrity check value
2610 Data decryption key fail limit reached
2611 Incomplete key-associated data set
2612 Vendor specific key reference not found
2613 Application tag mode page is invalid
2700 Write protected
2701 Hardware write protected
2702 Logical unit software write protected
2703 Associated write protect
2704 Persistent write protect
2705 Permanent write protect
2706 Conditional write protect
2707 Space allocation failed write protect
2708 Zone is read only
2800 Not ready to ready change, medium may have changed
2801 Import or export element accessed
2802 Format-layer may have changed
2803 Import/export element accessed, medium changed
2900 Power on, reset, or bus device reset occurred
2901 Power on occurred
2902 SCSI bus reset occurred
2903 Bus device reset function occurred
2904 Device internal reset
2905 Transceiver mode changed to single-ended
2906 Transceiver mode changed to LVD
2907 I_T nexus loss occurred
2A00 Parameters changed
2A01 Mode parameters changed
2A02 Log parameters changed
2A03 Reservations preempted
2A04 Reservations released
2A05 Registrations preempted
2A06 Asymmetric access state changed
2A07 Implicit asymmetric access state transition failed
2A08 Priority changed
2A09 Capacity data has changed
2A0A Error history I_T nexus cleared
2A0B Error history snapshot released
2A0C Error recovery attributes have changed
2A0D Data encryption capabilities changed
2A10 Timestamp changed
2A11 Data encryption parameters changed by another I_T nexus
2A12 Data encryption parameters changed by vendor specific event
2A13 Data encryption key instance counter has changed
2A14 SA creation capabilities data has changed
2A15 Medium removal prevention preempted
2B00 Copy cannot execute since host cannot disconnect
2C00 Command sequence error
2C01 Too many windows specified
2C02 Invalid combination of windows specified
2C03 Current program area is not empty
2C04 Current program area is empty
2C05 Illegal power condition request
2C06 Persistent prevent conflict
2C07 Previous busy status
2C08 Previous task set full status
2C09 Previous reservation conflict status
2C0A Partition or collection contains user objects
2C0B Not reserved
2C0C ORWRITE generation does not match
2C0D Reset write pointer not allowed
2C0E Zone is offline
2D00 Overwrite error on update in place
2E00 Insufficient time for operation
2F00 Commands cleared by another initiator
2F01 Commands cleared by power loss notification
2F02 Commands cleared by device server
2F03 Some commands cleared by queuing layer event
3000 Incompatible medium installed
3001 Cannot read medium - unknown format
3002 Cannot read medium - incompatible format
3003 Cleaning cartridge installed
3004 Cannot write medium - unknown format
3005 Cannot write medium - incompatible format
3006 Cannot format medium - incompatible medium
3007 Cleaning failure
3008 Cannot write - application code mismatch
3009 Current session not fixated for append
300A Cleaning request rejected
300C WORM medium - overwrite attempted
300D WORM medium - integrity check
3010 Medium not formatted
3011 Incompatible volume type
3012 Incompatible volume qualifier
3013 Cleaning volume expired
3100 Medium format corrupted
3101 Format command failed
3102 Zoned formatting failed due to spare linking
3103 Sanitize command failed
3200 No defect spare location available
3201 Defect list update failure
3300 Tape length error
3400 Enclosure failure
3500 Enclosure services failure
3501 Unsupported enclosure function
3502 Enclosure services unavailable
3503 Enclosure services transfer failure
3504 Enclosure services transfer refused
3505 Enclosure services checksum error
3600 Ribbon, ink, or toner failure
3700 Rounded parameter
3800 Event status notification
3802 ESN - power management class event
3804 ESN - media class event
3806 ESN - device busy class event
3807 Thin provisioning soft threshold reached
3900 Saving parameters not supported
3A00 Medium not present
3A01 Medium not present - tray closed
3A02 Medium not present - tray open
3A03 Medium not present - loadable
3A04 Medium not present - medium auxiliary memory accessible
3B00 Sequential positioning error
3B01 Tape position error at beginning-of-medium
3B02 Tape position error at end-of-medium
3B08 Reposition error
3B0C Position past beginning of medium
3B0D Medium destination element full
3B0E Medium source element empty
3B0F End of medium reached
3B11 Medium magazine not accessible
3B12 Medium magazine removed
3B13 Medium magazine inserted
3B14 Medium magazine locked
3B15 Medium magazine unlocked
3B16 Mechanical positioning or changer error
3B17 Read past end of user object
3B18 Element disabled
3B19 Element enabled
3B1A Data transfer device removed
3B1B Data transfer device inserted
3B1C Too many logical objects on partition to support operation
3D00 Invalid bits in IDENTIFY message
3E00 Logical unit has not self-configured yet
3E01 Logical unit failure
3E02 Timeout on logical unit
3E03 Logical unit failed self-test
3E04 Logical unit unable to update self-test log
3F00 Target operating conditions have changed
3F01 Microcode has been changed
3F02 Changed operating definition
3F03 INQUIRY data has changed
3F04 Component device attached
3F05 Device identifier changed
3F06 Redundancy group created or modified
3F07 Redundancy group deleted
3F08 Spare created or modified
3F09 Spare deleted
3F0A Volume set created or modified
3F0B Volume set deleted
3F0C Volume set deassigned
3F0D Volume set reassigned
3F0E Reported LUNs data has changed
3F0F Echo buffer overwritten
3F10 Medium loadable
3F11 Medium auxiliary memory accessible
3F12 iSCSI IP address added
3F13 iSCSI IP address removed
3F14 iSCSI IP address changed
3F15 Inspect referrals sense descriptors
3F16 Microcode has been changed without reset
3F17 Zone transition to full
4000 RAM failure
4100 Data path failure
4200 Power-on or self-test failure
4300 Message error
4400 Internal target failure
4401 Persistent reservation information lost
4471 ATA device failed SET FEATURES
4500 Select or reselect failure
4600 Unsuccessful soft reset
4700 SCSI parity error
4701 Data phase CRC error detected
4702 SCSI parity error detected during ST data phase
4703 Information unit iuCRC error detected
4704 Asynchronous information protection error detected
4705 Protocol service CRC error
4706 PHY test function in progress
477F Some commands cleared by iSCSI protocol event
4800 Initiator detected error message received
4900 Invalid message error
4A00 Command phase error
4B00 Data phase error
4B01 Invalid target port transfer tag received
4B02 Too much write data
4B03 ACK/NAK timeout
4B04 NAK received
4B05 Data offset error
4B06 Initiator response timeout
4B07 Connection lost
4B08 Data-in buffer overflow - data buffer size
4B09 Data-in buffer overflow - data buffer descriptor area
4B0A Data-in buffer error
4B0B Data-out buffer overflow - data buffer size
4B0C Data-out buffer overflow - data buffer descriptor area
4B0D Data-out buffer error
4B0E PCIe fabric error
4B0F PCIe completion timeout
4B10 PCIe completer abort
4B11 PCIe poisoned TLP received
4B12 PCIe ECRC check failed
4B13 PCIe unsupported request
4B14 PCIe ACS violation
4B15 PCIe TLP prefix blocked
4C00 Logical unit failed self-configuration
4E00 Overlapped commands attempted
5000 Write append error
5001 Write append position error
5002 Position error related to timing
5100 Erase failure
5101 Erase failure - incomplete erase operation detected
5200 Cartridge fault
5300 Media load or eject failed
5301 Unload tape failure
5302 Medium removal prevented
5303 Medium removal prevented by data transfer element
5304 Medium thread or unthread failure
5305 Volume identifier invalid
5306 Volume identifier missing
5307 Duplicate volume identifier
5308 Element status unknown
5309 Data transfer device error - load failed
530A Data transfer device error - unload failed
530B Data transfer device error - unload missing
530C Data transfer device error - eject failed
530D Data transfer device error - library communication failed
5400 SCSI to host system interface failure
5500 System resource failure
5501 System buffer full
5502 Insufficient reservation resources
5503 Insufficient resources
5504 Insufficient registration resources
5505 Insufficient access control resources
5506 Auxiliary memory out of space
5507 Quota error
5508 Maximum number of supplemental decryption keys exceeded
5509 Medium auxiliary memory not accessible
550A Data currently unavailable
550B Insufficient power for operation
550C Insufficient resources to create ROD
550D Insufficient resources to create ROD token
550E Insufficient zone resources
5700 Unable to recover table-of-contents
5800 Generation does not exist
5900 Updated block read
5A00 Operator request or state change input
5A01 Operator medium removal request
5A02 Operator selected write protect
5A03 Operator selected write permit
5B00 Log exception
5B01 Threshold condition met
5B02 Log counter at maximum
5B03 Log list codes exhausted
5C00 RPL status change
5C01 Spindles synchronized
5C02 Spindles not synchronized
5D00 Failure prediction threshold exceeded
5D01 Media failure prediction threshold exceeded
5D02 Logical unit failure prediction threshold exceeded
5D03 Spare area exhaustion prediction threshold exceeded
5DFF Failure prediction threshold exceeded (false)
5E00 Low power condition on
5E01 Idle condition activated by timer
5E02 Standby condition activated by timer
5E03 Idle condition activated by command
5E04 Standby condition activated by command
5E05 Idle_B condition activated by timer
5E06 Idle_B condition activated by command
5E07 Idle_C condition activated by timer
5E08 Idle_C condition activated by command
5E09 Standby_Y condition activated by timer
5E0A Standby_Y condition activated by command
5E41 Power state change to active
5E42 Power state change to idle
5E43 Power state change to standby
5E45 Power state change to sleep
5E47 Power state change to device control
6000 Lamp failure
6100 Video acquisition error
6101 Unable to acquire video
6102 Out of focus
6200 Scan head positioning error
6300 End of user area encountered on this track
6301 Packet does not fit in available space
6400 Illegal mode for this track
6401 Invalid packet size
6500 Voltage fault
6600 Automatic document feeder cover up
6700 Configuration failure
6701 Configuration of incapable logical units failed
6702 Add logical unit failed
6703 Modification of logical unit failed
6704 Exchange of logical unit failed
6705 Remove of logical unit failed
6706 Attachment of logical unit failed
6707 Creation of logical unit failed
6708 Assign failure occurred
6709 Multiply assigned logical unit
670A Set target port groups command failed
670B ATA device feature not enabled
6800 Logical unit not configured
6801 Subsidiary logical unit not configured
6900 Data loss on logical unit
6901 Multiple logical unit failures
6902 Parity/data mismatch
6A00 Informational, refer to log
6B00 State change has occurred
6B01 Redundancy level got better
6B02 Redundancy level got worse
6C00 Rebuild failure occurred
6D00 Recalculate failure occurred
6E00 Command to logical unit failed
6F00 Copy protection key exchange failure - authentication failure
6F01 Copy protection key exchange failure - key not present
6F02 Copy protection key exchange failure - key not established
6F03 Read of scrambled sector without authentication
6F04 Media region code is mismatched to logical unit region
6F05 Drive region must be permanent/region reset count error
7100 Decompression exception long algorithm ID
7200 Session fixation error
7201 Session fixation error writing lead-in
7202 Session fixation error writing lead-out
7300 CD control error
7301 Power calibration area almost full
7302 Power calibration area is full
7303 Power calibration area error
7304 Program memory area update failure
7305 Program memory area is full
7400 Security error
7401 Unable to decrypt data
7402 Unencrypted data encountered while decrypting
7403 Incorrect data encryption key
7404 Cryptographic integrity validation failed
7405 Error decrypting data
7471 Logical unit access not authorized
"""


def _parse_asc_table(text: str) -> dict[int, str]:
    table: dict[int, str] = {}
    for line in text.splitlines():
        if line:
            code, _, name = line.partition(" ")
            table[int(code, 16)] = name
    return table


#: (ASC << 8 | ASCQ) -> name.
ASC_NAMES: Final[Mapping[int, str]] = _parse_asc_table(_ASC_TEXT)


def asc_name(asc: int, ascq: int) -> str:
    """T10 name of an ASC/ASCQ pair, or ``""`` when unknown (``(0x24, 0) -> "Invalid field in CDB"``)."""
    name = ASC_NAMES.get(asc << 8 | ascq)
    if name is not None:
        return name
    if asc == 0x40 and ascq:
        return f"Diagnostic failure on component 0x{ascq:02x}"
    if asc == 0x4D:
        return f"Tagged overlapped commands (task tag 0x{ascq:02x})"
    if asc == 0x70:
        return f"Decompression exception short algorithm ID of 0x{ascq:02x}"
    if asc >= 0x80 or ascq >= 0x80:
        return f"Vendor specific (0x{asc:02x}/0x{ascq:02x})"
    return ""


# --------------------------------------------------------------------------- sense data


def decode_sense(data: bytes) -> Sense:
    """Decode SPC-4 sense data, fixed (0x70/0x71) or descriptor (0x72/0x73) format.

    ``information`` is the INFORMATION field when valid (fixed: VALID bit; descriptor:
    an Information descriptor with VALID set), else None. Short fixed-format sense
    (additional sense length < 6, seen with old tape drives) decodes with ASC/ASCQ 0.
    Raises :class:`DecodeError` for empty data, a too-short header, or a vendor-specific
    or unknown response code.
    """
    n = len(data)
    if n == 0:
        raise DecodeError("empty sense data", 0)
    rc = data[0] & 0x7F
    if rc in (0x70, 0x71):  # SPC-4 §4.5.3 fixed format
        if n < 3:
            raise DecodeError("fixed-format sense data shorter than 3 bytes", n)
        key = data[2] & 0x0F
        asc = data[12] if n > 12 else 0
        ascq = data[13] if n > 13 else 0
        information = int.from_bytes(data[3:7], "big") if data[0] & 0x80 and n >= 7 else None
    elif rc in (0x72, 0x73):  # SPC-4 §4.5.2 descriptor format
        if n < 4:
            raise DecodeError("descriptor-format sense data shorter than 4 bytes", n)
        key = data[1] & 0x0F
        asc = data[2]
        ascq = data[3]
        information = None
        if n > 8:
            end = min(n, 8 + data[7])
            pos = 8
            while pos + 2 <= end:
                dlen = data[pos + 1]
                if data[pos] == 0x00 and dlen >= 0x0A and pos + 12 <= end:  # Information descriptor
                    if data[pos + 2] & 0x80:
                        information = int.from_bytes(data[pos + 4:pos + 12], "big")
                    break
                pos += 2 + dlen
    else:
        raise DecodeError(f"unsupported sense data response code 0x{rc:02x}", 0)
    return Sense(
        response_code=rc,
        sense_key=key,
        asc=asc,
        ascq=ascq,
        key_name=_SENSE_KEY_NAMES[key],
        asc_name=asc_name(asc, ascq),
        information=information,
    )


def sense_summary(sense: Sense) -> str:
    """``"ILLEGAL REQUEST, Invalid field in CDB"`` (ASC/ASCQ in hex when the pair is unknown)."""
    if sense.asc_name:
        return f"{sense.key_name}, {sense.asc_name}"
    return f"{sense.key_name}, ASC/ASCQ 0x{sense.asc:02x}/0x{sense.ascq:02x}"


# --------------------------------------------------------------------------- operation codes


class ScsiOpcode(IntEnum):
    """Common SCSI operation codes (SPC-4/SBC-3 names; device-specific aliases follow)."""

    TEST_UNIT_READY = 0x00  #: SPC
    REZERO_UNIT = 0x01  #: SBC (obsolete); REWIND on tape
    REQUEST_SENSE = 0x03  #: SPC
    FORMAT_UNIT = 0x04  #: SBC
    READ_BLOCK_LIMITS = 0x05  #: SSC
    REASSIGN_BLOCKS = 0x07  #: SBC; INITIALIZE ELEMENT STATUS on a changer
    READ_6 = 0x08  #: SBC/SSC READ(6)
    WRITE_6 = 0x0A  #: SBC/SSC WRITE(6)
    WRITE_FILEMARKS_6 = 0x10  #: SSC
    SPACE_6 = 0x11  #: SSC
    INQUIRY = 0x12  #: SPC
    VERIFY_6 = 0x13  #: SSC
    MODE_SELECT_6 = 0x15  #: SPC
    RESERVE_6 = 0x16  #: SPC-2 (obsolete)
    RELEASE_6 = 0x17  #: SPC-2 (obsolete)
    ERASE_6 = 0x19  #: SSC
    MODE_SENSE_6 = 0x1A  #: SPC
    START_STOP_UNIT = 0x1B  #: SBC/MMC; LOAD UNLOAD on tape
    RECEIVE_DIAGNOSTIC_RESULTS = 0x1C  #: SPC
    SEND_DIAGNOSTIC = 0x1D  #: SPC
    PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1E  #: SPC/SBC/SSC/SMC/MMC
    READ_FORMAT_CAPACITIES = 0x23  #: MMC
    READ_CAPACITY_10 = 0x25  #: SBC (MMC: READ CAPACITY)
    READ_10 = 0x28  #: SBC/MMC
    WRITE_10 = 0x2A  #: SBC/MMC
    LOCATE_10 = 0x2B  #: SSC; SEEK(10) on disk, POSITION TO ELEMENT on a changer
    WRITE_AND_VERIFY_10 = 0x2E  #: SBC
    VERIFY_10 = 0x2F  #: SBC
    PRE_FETCH_10 = 0x34  #: SBC; READ POSITION on tape
    SYNCHRONIZE_CACHE_10 = 0x35  #: SBC/MMC
    READ_DEFECT_DATA_10 = 0x37  #: SBC; INITIALIZE ELEMENT STATUS WITH RANGE on a changer
    WRITE_BUFFER = 0x3B  #: SPC
    READ_BUFFER = 0x3C  #: SPC
    READ_LONG_10 = 0x3E  #: SBC
    WRITE_LONG_10 = 0x3F  #: SBC
    WRITE_SAME_10 = 0x41  #: SBC
    UNMAP = 0x42  #: SBC; READ SUB-CHANNEL on MMC
    READ_TOC_PMA_ATIP = 0x43  #: MMC
    REPORT_DENSITY_SUPPORT = 0x44  #: SSC
    GET_CONFIGURATION = 0x46  #: MMC
    GET_EVENT_STATUS_NOTIFICATION = 0x4A  #: MMC
    LOG_SELECT = 0x4C  #: SPC
    LOG_SENSE = 0x4D  #: SPC
    READ_DISC_INFORMATION = 0x51  #: MMC
    READ_TRACK_INFORMATION = 0x52  #: MMC
    MODE_SELECT_10 = 0x55  #: SPC
    RESERVE_10 = 0x56  #: SPC-2 (obsolete)
    RELEASE_10 = 0x57  #: SPC-2 (obsolete)
    MODE_SENSE_10 = 0x5A  #: SPC
    PERSISTENT_RESERVE_IN = 0x5E  #: SPC
    PERSISTENT_RESERVE_OUT = 0x5F  #: SPC
    VARIABLE_LENGTH_CDB = 0x7F  #: SPC (READ(32), WRITE(32) ... by service action)
    WRITE_FILEMARKS_16 = 0x80  #: SSC
    EXTENDED_COPY = 0x83  #: SPC
    RECEIVE_COPY_RESULTS = 0x84  #: SPC
    ATA_PASS_THROUGH_16 = 0x85  #: SAT
    ACCESS_CONTROL_IN = 0x86  #: SPC
    ACCESS_CONTROL_OUT = 0x87  #: SPC
    READ_16 = 0x88  #: SBC
    COMPARE_AND_WRITE = 0x89  #: SBC
    WRITE_16 = 0x8A  #: SBC
    READ_ATTRIBUTE = 0x8C  #: SPC
    WRITE_ATTRIBUTE = 0x8D  #: SPC
    WRITE_AND_VERIFY_16 = 0x8E  #: SBC
    VERIFY_16 = 0x8F  #: SBC
    PRE_FETCH_16 = 0x90  #: SBC
    SYNCHRONIZE_CACHE_16 = 0x91  #: SBC; SPACE(16) on tape
    LOCATE_16 = 0x92  #: SSC
    WRITE_SAME_16 = 0x93  #: SBC; ERASE(16) on tape
    SERVICE_ACTION_IN_16 = 0x9E  #: SBC (READ CAPACITY(16), GET LBA STATUS ...)
    SERVICE_ACTION_OUT_16 = 0x9F  #: SBC
    REPORT_LUNS = 0xA0  #: SPC
    ATA_PASS_THROUGH_12 = 0xA1  #: SAT; BLANK on MMC
    SECURITY_PROTOCOL_IN = 0xA2  #: SPC
    MAINTENANCE_IN = 0xA3  #: SPC (REPORT TARGET PORT GROUPS ...); SEND KEY on MMC
    MAINTENANCE_OUT = 0xA4  #: SPC; REPORT KEY on MMC
    MOVE_MEDIUM = 0xA5  #: SMC; PLAY AUDIO(12) on MMC
    EXCHANGE_MEDIUM = 0xA6  #: SMC; LOAD/UNLOAD MEDIUM on MMC
    READ_12 = 0xA8  #: SBC/MMC
    WRITE_12 = 0xAA  #: SBC/MMC
    SERVICE_ACTION_IN_12 = 0xAB  #: SPC (READ MEDIA SERIAL NUMBER)
    GET_PERFORMANCE = 0xAC  #: MMC
    READ_DISC_STRUCTURE = 0xAD  #: MMC
    WRITE_AND_VERIFY_12 = 0xAE  #: SBC
    VERIFY_12 = 0xAF  #: SBC
    SECURITY_PROTOCOL_OUT = 0xB5  #: SPC; REQUEST VOLUME ELEMENT ADDRESS on a changer
    SEND_VOLUME_TAG = 0xB6  #: SMC; SET STREAMING on MMC
    READ_DEFECT_DATA_12 = 0xB7  #: SBC
    READ_ELEMENT_STATUS = 0xB8  #: SMC
    READ_CD_MSF = 0xB9  #: MMC
    SET_CD_SPEED = 0xBB  #: MMC
    MECHANISM_STATUS = 0xBD  #: MMC
    READ_CD = 0xBE  #: MMC
    # Device-specific aliases (same value, other command set)
    REWIND = 0x01  #: SSC
    INITIALIZE_ELEMENT_STATUS = 0x07  #: SMC
    LOAD_UNLOAD = 0x1B  #: SSC
    POSITION_TO_ELEMENT = 0x2B  #: SMC
    READ_POSITION = 0x34  #: SSC
    SPACE_16 = 0x91  #: SSC
    INITIALIZE_ELEMENT_STATUS_WITH_RANGE = 0x37  #: SMC
    ERASE_16 = 0x93  #: SSC


# Neutral names (no device type known). Where command sets disagree the name shows both.
_OP_NAMES: Final[dict[int, str]] = {
    0x00: "TEST UNIT READY",
    0x01: "REWIND / REZERO UNIT",
    0x03: "REQUEST SENSE",
    0x04: "FORMAT UNIT",
    0x05: "READ BLOCK LIMITS",
    0x07: "REASSIGN BLOCKS / INITIALIZE ELEMENT STATUS",
    0x08: "READ(6)",
    0x0A: "WRITE(6)",
    0x0B: "SEEK(6) / SET CAPACITY",
    0x0F: "READ REVERSE(6)",
    0x10: "WRITE FILEMARKS(6)",
    0x11: "SPACE(6)",
    0x12: "INQUIRY",
    0x13: "VERIFY(6)",
    0x14: "RECOVER BUFFERED DATA",
    0x15: "MODE SELECT(6)",
    0x16: "RESERVE(6)",
    0x17: "RELEASE(6)",
    0x18: "COPY",
    0x19: "ERASE(6)",
    0x1A: "MODE SENSE(6)",
    0x1B: "START STOP UNIT / LOAD UNLOAD",
    0x1C: "RECEIVE DIAGNOSTIC RESULTS",
    0x1D: "SEND DIAGNOSTIC",
    0x1E: "PREVENT ALLOW MEDIUM REMOVAL",
    0x23: "READ FORMAT CAPACITIES",
    0x25: "READ CAPACITY(10)",
    0x28: "READ(10)",
    0x2A: "WRITE(10)",
    0x2B: "SEEK(10) / LOCATE(10) / POSITION TO ELEMENT",
    0x2C: "ERASE(10)",
    0x2E: "WRITE AND VERIFY(10)",
    0x2F: "VERIFY(10)",
    0x30: "SEARCH DATA HIGH(10)",
    0x31: "SEARCH DATA EQUAL(10)",
    0x32: "SEARCH DATA LOW(10)",
    0x33: "SET LIMITS(10)",
    0x34: "PRE-FETCH(10) / READ POSITION",
    0x35: "SYNCHRONIZE CACHE(10)",
    0x36: "LOCK UNLOCK CACHE(10)",
    0x37: "READ DEFECT DATA(10) / INITIALIZE ELEMENT STATUS WITH RANGE",
    0x38: "MEDIUM SCAN",
    0x39: "COMPARE",
    0x3A: "COPY AND VERIFY",
    0x3B: "WRITE BUFFER",
    0x3C: "READ BUFFER",
    0x3D: "UPDATE BLOCK",
    0x3E: "READ LONG(10)",
    0x3F: "WRITE LONG(10)",
    0x40: "CHANGE DEFINITION",
    0x41: "WRITE SAME(10)",
    0x42: "UNMAP / READ SUB-CHANNEL",
    0x43: "READ TOC/PMA/ATIP",
    0x44: "REPORT DENSITY SUPPORT / READ HEADER",
    0x45: "PLAY AUDIO(10)",
    0x46: "GET CONFIGURATION",
    0x47: "PLAY AUDIO MSF",
    0x48: "SANITIZE",
    0x4A: "GET EVENT STATUS NOTIFICATION",
    0x4B: "PAUSE/RESUME",
    0x4C: "LOG SELECT",
    0x4D: "LOG SENSE",
    0x4E: "STOP PLAY/SCAN",
    0x50: "XDWRITE(10)",
    0x51: "READ DISC INFORMATION",
    0x52: "READ TRACK INFORMATION",
    0x53: "RESERVE TRACK",
    0x54: "SEND OPC INFORMATION",
    0x55: "MODE SELECT(10)",
    0x56: "RESERVE(10)",
    0x57: "RELEASE(10)",
    0x58: "REPAIR TRACK",
    0x5A: "MODE SENSE(10)",
    0x5B: "CLOSE TRACK/SESSION",
    0x5C: "READ BUFFER CAPACITY",
    0x5D: "SEND CUE SHEET",
    0x5E: "PERSISTENT RESERVE IN",
    0x5F: "PERSISTENT RESERVE OUT",
    0x7E: "EXTENDED CDB",
    0x7F: "VARIABLE LENGTH CDB",
    0x80: "WRITE FILEMARKS(16)",
    0x81: "READ REVERSE(16)",
    0x82: "ALLOW OVERWRITE",
    0x83: "EXTENDED COPY",
    0x84: "RECEIVE COPY RESULTS",
    0x85: "ATA PASS-THROUGH(16)",
    0x86: "ACCESS CONTROL IN",
    0x87: "ACCESS CONTROL OUT",
    0x88: "READ(16)",
    0x89: "COMPARE AND WRITE",
    0x8A: "WRITE(16)",
    0x8B: "ORWRITE(16)",
    0x8C: "READ ATTRIBUTE",
    0x8D: "WRITE ATTRIBUTE",
    0x8E: "WRITE AND VERIFY(16)",
    0x8F: "VERIFY(16)",
    0x90: "PRE-FETCH(16)",
    0x91: "SYNCHRONIZE CACHE(16) / SPACE(16)",
    0x92: "LOCK UNLOCK CACHE(16) / LOCATE(16)",
    0x93: "WRITE SAME(16) / ERASE(16)",
    0x94: "ZBC OUT",
    0x95: "ZBC IN",
    0x9A: "WRITE STREAM(16)",
    0x9B: "READ BUFFER(16)",
    0x9C: "WRITE ATOMIC(16)",
    0x9D: "SERVICE ACTION BIDIRECTIONAL",
    0x9E: "SERVICE ACTION IN(16)",
    0x9F: "SERVICE ACTION OUT(16)",
    0xA0: "REPORT LUNS",
    0xA1: "ATA PASS-THROUGH(12) / BLANK",
    0xA2: "SECURITY PROTOCOL IN",
    0xA3: "MAINTENANCE IN",
    0xA4: "MAINTENANCE OUT",
    0xA5: "MOVE MEDIUM / PLAY AUDIO(12)",
    0xA6: "EXCHANGE MEDIUM / LOAD/UNLOAD MEDIUM",
    0xA7: "MOVE MEDIUM ATTACHED / SET READ AHEAD",
    0xA8: "READ(12)",
    0xA9: "SERVICE ACTION OUT(12)",
    0xAA: "WRITE(12)",
    0xAB: "SERVICE ACTION IN(12)",
    0xAC: "GET PERFORMANCE",
    0xAD: "READ DISC STRUCTURE",
    0xAE: "WRITE AND VERIFY(12)",
    0xAF: "VERIFY(12)",
    0xB3: "SET LIMITS(12)",
    0xB4: "READ ELEMENT STATUS ATTACHED",
    0xB5: "SECURITY PROTOCOL OUT / REQUEST VOLUME ELEMENT ADDRESS",
    0xB6: "SEND VOLUME TAG / SET STREAMING",
    0xB7: "READ DEFECT DATA(12)",
    0xB8: "READ ELEMENT STATUS",
    0xB9: "READ CD MSF",
    0xBA: "REDUNDANCY GROUP IN / SCAN",
    0xBB: "REDUNDANCY GROUP OUT / SET CD SPEED",
    0xBC: "SPARE IN",
    0xBD: "SPARE OUT / MECHANISM STATUS",
    0xBE: "VOLUME SET IN / READ CD",
    0xBF: "VOLUME SET OUT / SEND DISC STRUCTURE",
}

#: Peripheral device type -> {opcode: name} overrides (SPC-4 Table 129 device types).
_DEVICE_OP_NAMES: Final[dict[int, dict[int, str]]] = {
    0x00: {  # SBC direct access block device
        0x01: "REZERO UNIT", 0x07: "REASSIGN BLOCKS", 0x0B: "SEEK(6)", 0x1B: "START STOP UNIT",
        0x2B: "SEEK(10)", 0x34: "PRE-FETCH(10)", 0x37: "READ DEFECT DATA(10)", 0x42: "UNMAP",
        0x91: "SYNCHRONIZE CACHE(16)", 0x92: "LOCK UNLOCK CACHE(16)", 0x93: "WRITE SAME(16)",
        0xA1: "ATA PASS-THROUGH(12)", 0xB5: "SECURITY PROTOCOL OUT",
    },
    0x01: {  # SSC sequential access (tape)
        0x01: "REWIND", 0x0B: "SET CAPACITY", 0x1B: "LOAD UNLOAD", 0x2B: "LOCATE(10)",
        0x34: "READ POSITION", 0x44: "REPORT DENSITY SUPPORT", 0x91: "SPACE(16)", 0x92: "LOCATE(16)",
        0x93: "ERASE(16)", 0xB5: "SECURITY PROTOCOL OUT",
    },
    0x05: {  # MMC CD/DVD
        0x1B: "START STOP UNIT", 0x25: "READ CAPACITY", 0x42: "READ SUB-CHANNEL", 0x44: "READ HEADER",
        0xA1: "BLANK", 0xA2: "SEND EVENT", 0xA3: "SEND KEY", 0xA4: "REPORT KEY", 0xA5: "PLAY AUDIO(12)",
        0xA6: "LOAD/UNLOAD MEDIUM", 0xA7: "SET READ AHEAD", 0xB6: "SET STREAMING", 0xBA: "SCAN",
        0xBB: "SET CD SPEED", 0xBD: "MECHANISM STATUS", 0xBE: "READ CD", 0xBF: "SEND DISC STRUCTURE",
    },
    0x08: {  # SMC medium changer
        0x07: "INITIALIZE ELEMENT STATUS", 0x1B: "OPEN/CLOSE IMPORT/EXPORT ELEMENT",
        0x2B: "POSITION TO ELEMENT", 0x37: "INITIALIZE ELEMENT STATUS WITH RANGE", 0xA5: "MOVE MEDIUM",
        0xA6: "EXCHANGE MEDIUM", 0xB5: "REQUEST VOLUME ELEMENT ADDRESS", 0xB6: "SEND VOLUME TAG",
    },
}

#: (opcode, service action) -> name, for opcodes whose meaning depends on the service action.
_SA_NAMES: Final[dict[tuple[int, int], str]] = {
    (0x9E, 0x10): "READ CAPACITY(16)",
    (0x9E, 0x11): "READ LONG(16)",
    (0x9E, 0x12): "GET LBA STATUS",
    (0x9E, 0x13): "REPORT REFERRALS",
    (0x9E, 0x14): "STREAM CONTROL",
    (0x9E, 0x15): "BACKGROUND CONTROL",
    (0x9E, 0x16): "GET STREAM STATUS",
    (0x9F, 0x11): "WRITE LONG(16)",
    (0x9F, 0x1F): "NOTIFY DATA TRANSFER DEVICE",
    (0xA3, 0x05): "REPORT IDENTIFYING INFORMATION",
    (0xA3, 0x0A): "REPORT TARGET PORT GROUPS",
    (0xA3, 0x0B): "REPORT ALIASES",
    (0xA3, 0x0C): "REPORT SUPPORTED OPERATION CODES",
    (0xA3, 0x0D): "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS",
    (0xA3, 0x0E): "REPORT PRIORITY",
    (0xA3, 0x0F): "REPORT TIMESTAMP",
    (0xA3, 0x10): "MANAGEMENT PROTOCOL IN",
    (0xA4, 0x06): "SET IDENTIFYING INFORMATION",
    (0xA4, 0x0A): "SET TARGET PORT GROUPS",
    (0xA4, 0x0B): "CHANGE ALIASES",
    (0xA4, 0x0C): "REMOVE I_T NEXUS",
    (0xA4, 0x0E): "SET PRIORITY",
    (0xA4, 0x0F): "SET TIMESTAMP",
    (0xA4, 0x10): "MANAGEMENT PROTOCOL OUT",
    (0xAB, 0x01): "READ MEDIA SERIAL NUMBER",
    (0x5E, 0x00): "PERSISTENT RESERVE IN (READ KEYS)",
    (0x5E, 0x01): "PERSISTENT RESERVE IN (READ RESERVATION)",
    (0x5E, 0x02): "PERSISTENT RESERVE IN (REPORT CAPABILITIES)",
    (0x5E, 0x03): "PERSISTENT RESERVE IN (READ FULL STATUS)",
    (0x5F, 0x00): "PERSISTENT RESERVE OUT (REGISTER)",
    (0x5F, 0x01): "PERSISTENT RESERVE OUT (RESERVE)",
    (0x5F, 0x02): "PERSISTENT RESERVE OUT (RELEASE)",
    (0x5F, 0x03): "PERSISTENT RESERVE OUT (CLEAR)",
    (0x5F, 0x04): "PERSISTENT RESERVE OUT (PREEMPT)",
    (0x5F, 0x05): "PERSISTENT RESERVE OUT (PREEMPT AND ABORT)",
    (0x5F, 0x06): "PERSISTENT RESERVE OUT (REGISTER AND IGNORE EXISTING KEY)",
    (0x5F, 0x07): "PERSISTENT RESERVE OUT (REGISTER AND MOVE)",
    (0x5F, 0x08): "PERSISTENT RESERVE OUT (REPLACE LOST RESERVATION)",
    (0x83, 0x00): "EXTENDED COPY(LID1)",
    (0x83, 0x01): "EXTENDED COPY(LID4)",
    (0x83, 0x10): "POPULATE TOKEN",
    (0x83, 0x11): "WRITE USING TOKEN",
    (0x83, 0x1C): "COPY OPERATION ABORT",
    (0x84, 0x00): "RECEIVE COPY STATUS(LID1)",
    (0x84, 0x01): "RECEIVE COPY DATA(LID1)",
    (0x84, 0x03): "RECEIVE COPY OPERATING PARAMETERS",
    (0x84, 0x04): "RECEIVE COPY FAILURE DETAILS(LID1)",
    (0x84, 0x05): "RECEIVE COPY STATUS(LID4)",
    (0x84, 0x06): "RECEIVE COPY DATA(LID4)",
    (0x84, 0x07): "RECEIVE ROD TOKEN INFORMATION",
    (0x84, 0x08): "REPORT ALL ROD TOKENS",
    (0x7F, 0x0009): "READ(32)",
    (0x7F, 0x000A): "VERIFY(32)",
    (0x7F, 0x000B): "WRITE(32)",
    (0x7F, 0x000C): "WRITE AND VERIFY(32)",
    (0x7F, 0x000D): "WRITE SAME(32)",
    (0x7F, 0x000E): "READ LONG(32)",
    (0x7F, 0x000F): "WRITE LONG(32)",
    (0x7F, 0x0010): "WRITE STREAM(32)",
    (0x7F, 0x0011): "ORWRITE(32)",
}

# Opcodes whose service action is byte 1 bits 4-0 (SPC-4 §4.2.2).
_SA_BYTE1: Final = frozenset({0x5E, 0x5F, 0x83, 0x84, 0x9E, 0x9F, 0xA3, 0xA4, 0xA9, 0xAB})


def opcode_name(op: int, device_type: int | None = None) -> str:
    """Name of a SCSI operation code, e.g. ``0x28 -> "READ(10)"``; see the module docstring."""
    if device_type is not None:
        specific = _DEVICE_OP_NAMES.get(device_type)
        if specific is not None and op in specific:
            return specific[op]
    name = _OP_NAMES.get(op)
    if name is not None:
        return name
    if op >= 0xC0:
        return f"Vendor specific 0x{op:02x}"
    return f"Unknown opcode 0x{op:02x}"


# --------------------------------------------------------------------------- CDB


def _u16(b: bytes, i: int) -> int:
    return b[i] << 8 | b[i + 1]


def _u24(b: bytes, i: int) -> int:
    return b[i] << 16 | b[i + 1] << 8 | b[i + 2]


def _u32(b: bytes, i: int) -> int:
    return int.from_bytes(b[i:i + 4], "big")


def _u64(b: bytes, i: int) -> int:
    return int.from_bytes(b[i:i + 8], "big")


# (LBA kind, length kind) layouts, keyed by opcode. "lba": where/how wide; "len": where/how wide.
# Each value: (min_cdb_len, lba_offset, lba_width, len_offset, len_width)
_RW10: Final = (10, 2, 4, 7, 2)
_RW12: Final = (12, 2, 4, 6, 4)
_RW16: Final = (16, 2, 8, 10, 4)
_LBA_LAYOUT: Final[dict[int, tuple[int, int, int, int, int]]] = {
    0x28: _RW10, 0x2A: _RW10, 0x2E: _RW10, 0x2F: _RW10, 0x41: _RW10, 0x34: _RW10, 0x35: _RW10,
    0x3E: _RW10, 0x3F: _RW10, 0x36: _RW10,
    0xA8: _RW12, 0xAA: _RW12, 0xAE: _RW12, 0xAF: _RW12,
    0x88: _RW16, 0x8A: _RW16, 0x8E: _RW16, 0x8F: _RW16, 0x93: _RW16, 0x90: _RW16, 0x91: _RW16,
    0x92: _RW16, 0x8B: _RW16, 0x9A: _RW16, 0x9C: _RW16,
    0x89: (16, 2, 8, 13, 1),  # COMPARE AND WRITE: NUMBER OF LOGICAL BLOCKS is byte 13
    0xBE: (12, 2, 4, 6, 3),  # READ CD: 24-bit transfer length
}
# Opcodes decoded by the fast path (no device-type ambiguity, SBC layout).
_FAST_RW: Final = frozenset({0x28, 0x2A, 0x88, 0x8A, 0xA8, 0xAA, 0x2F, 0x8F, 0x35, 0x41})
# Tape (SSC) ops that are not SBC-shaped.
_TAPE_NOT_SBC: Final = frozenset({0x34, 0x91, 0x92, 0x93})

# Opcode -> (min_cdb_len, offset, width) of the allocation / parameter list length (bytes).
_ALLOC_LAYOUT: Final[dict[int, tuple[int, int, int]]] = {
    0x03: (6, 4, 1),  # REQUEST SENSE
    0x12: (6, 3, 2),  # INQUIRY (SPC-3+: 16 bits)
    0x15: (6, 4, 1),  # MODE SELECT(6) parameter list length
    0x1A: (6, 4, 1),  # MODE SENSE(6)
    0x1C: (6, 3, 2),  # RECEIVE DIAGNOSTIC RESULTS
    0x1D: (6, 3, 2),  # SEND DIAGNOSTIC parameter list length
    0x23: (10, 7, 2),  # READ FORMAT CAPACITIES
    0x3B: (10, 6, 3),  # WRITE BUFFER parameter list length
    0x3C: (10, 6, 3),  # READ BUFFER
    0x42: (10, 7, 2),  # UNMAP parameter list length (READ SUB-CHANNEL alloc on MMC: same place)
    0x43: (10, 7, 2),  # READ TOC/PMA/ATIP
    0x46: (10, 7, 2),  # GET CONFIGURATION
    0x4A: (10, 7, 2),  # GET EVENT STATUS NOTIFICATION
    0x4C: (10, 7, 2),  # LOG SELECT parameter list length
    0x4D: (10, 7, 2),  # LOG SENSE
    0x51: (10, 7, 2),  # READ DISC INFORMATION
    0x52: (10, 7, 2),  # READ TRACK INFORMATION
    0x55: (10, 7, 2),  # MODE SELECT(10)
    0x5A: (10, 7, 2),  # MODE SENSE(10)
    0x5C: (10, 7, 2),  # READ BUFFER CAPACITY
    0x5E: (10, 7, 2),  # PERSISTENT RESERVE IN
    0x5F: (10, 5, 4),  # PERSISTENT RESERVE OUT parameter list length
    0x83: (16, 10, 4),  # EXTENDED COPY
    0x84: (16, 10, 4),  # RECEIVE COPY RESULTS
    0x8C: (16, 10, 4),  # READ ATTRIBUTE
    0x8D: (16, 10, 4),  # WRITE ATTRIBUTE
    0xA0: (12, 6, 4),  # REPORT LUNS
    0xA2: (12, 6, 4),  # SECURITY PROTOCOL IN
    0xA3: (12, 6, 4),  # MAINTENANCE IN
    0xA4: (12, 6, 4),  # MAINTENANCE OUT
    0xAB: (12, 10, 4),  # SERVICE ACTION IN(12)
    0xAD: (12, 8, 2),  # READ DISC STRUCTURE
    0xB5: (12, 6, 4),  # SECURITY PROTOCOL OUT
    0xB8: (12, 7, 3),  # READ ELEMENT STATUS
}


def decode_cdb(cdb: bytes, device_type: int | None = None) -> Cdb:
    """Decode a CDB: name, LBA and transfer length for READ/WRITE/VERIFY/WRITE SAME/...,
    allocation or parameter list length (in bytes) for INQUIRY/MODE SENSE/REPORT LUNS/...,
    and the service action for SA-based opcodes (0x5e/0x5f/0x7f/0x83/0x84/0x9e/0x9f/0xa3/0xa4/0xab).

    READ(6)/WRITE(6): a transfer length of 0 means 256 blocks (SBC). With ``device_type=1``
    (tape) READ(6)/WRITE(6)/VERIFY(6) carry a 24-bit length and no LBA. Short CDBs give
    None fields rather than an error; only an empty CDB raises :class:`DecodeError`.
    """
    n = len(cdb)
    if n == 0:
        raise DecodeError("empty CDB", 0)
    if type(cdb) is not bytes:
        cdb = bytes(cdb)
    op = cdb[0]
    if device_type is None and op in _FAST_RW and n >= 16:  # hot path: READ/WRITE(10/16) from iSCSI
        _, lo, lw, xo, xw = _LBA_LAYOUT[op]
        return Cdb(op, _OP_NAMES[op], int.from_bytes(cdb[lo:lo + lw], "big"),
                   int.from_bytes(cdb[xo:xo + xw], "big"), None, cdb)
    lba: int | None = None
    length: int | None = None
    sa: int | None = None
    tape = device_type == 0x01

    if op in _SA_BYTE1 and not (device_type == 0x05 and op in (0xA3, 0xA4)):  # MMC SEND/REPORT KEY
        sa = cdb[1] & 0x1F if n > 1 else None
    elif op == 0x7F and n >= 10:
        sa = _u16(cdb, 8)

    layout = _LBA_LAYOUT.get(op)
    if layout is not None and not (tape and op in _TAPE_NOT_SBC):
        min_len, lo, lw, xo, xw = layout
        if n >= min_len:
            lba = int.from_bytes(cdb[lo:lo + lw], "big")
            length = int.from_bytes(cdb[xo:xo + xw], "big")
    elif op in (0x08, 0x0A) and n >= 6:
        if tape:  # SSC READ(6)/WRITE(6): FIXED bit, 24-bit transfer length
            length = _u24(cdb, 2)
        else:  # SBC: 21-bit LBA, 8-bit length, 0 means 256
            lba = (cdb[1] & 0x1F) << 16 | _u16(cdb, 2)
            length = cdb[4] or 256
    elif op in (0x10, 0x13) and n >= 5:
        length = _u24(cdb, 2)  # SSC WRITE FILEMARKS(6) count / VERIFY(6) length
    elif op == 0x11 and n >= 5:
        count = _u24(cdb, 2)  # SSC SPACE(6): signed 24-bit count (negative = backwards)
        length = count - (1 << 24) if count & 0x800000 else count
    elif op == 0x7F and n >= 32 and sa in (0x0009, 0x000A, 0x000B, 0x000C, 0x000D):
        lba = _u64(cdb, 12)
        length = _u32(cdb, 28)
    elif op == 0x9E and n >= 14:
        if sa in (0x10, 0x12, 0x13, 0x16):  # READ CAPACITY(16), GET LBA STATUS ...: alloc length
            length = _u32(cdb, 10)
            if sa == 0x12:
                lba = _u64(cdb, 2)
    elif op == 0x2B and n >= 7 and tape:
        lba = _u32(cdb, 3)  # LOCATE(10) logical object identifier
    elif op == 0x92 and n >= 12 and tape:
        lba = _u64(cdb, 4)  # LOCATE(16)
    else:
        alloc = _ALLOC_LAYOUT.get(op)
        if alloc is not None:
            min_len, xo, xw = alloc
            if n >= min_len:
                length = int.from_bytes(cdb[xo:xo + xw], "big")

    name = _SA_NAMES.get((op, sa)) if sa is not None else None
    if name is None:
        name = opcode_name(op, device_type)
    return Cdb(opcode=op, name=name, lba=lba, transfer_length=length, service_action=sa, raw=cdb)
