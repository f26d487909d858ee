"""MRT type and subtype codes (RFC 6396 §4, with the deprecated types of §B)."""

from __future__ import annotations

from enum import IntEnum


class MrtType(IntEnum):
    BGP = 5  # deprecated (RFC 6396 Appendix B.2.3); RIS 1999-2001 archives use it
    TABLE_DUMP = 12
    TABLE_DUMP_V2 = 13
    BGP4MP = 16
    BGP4MP_ET = 17


class TableDumpV2(IntEnum):
    PEER_INDEX_TABLE = 1
    RIB_IPV4_UNICAST = 2
    RIB_IPV4_MULTICAST = 3
    RIB_IPV6_UNICAST = 4
    RIB_IPV6_MULTICAST = 5
    RIB_GENERIC = 6
    # RFC 8050 (ADD-PATH for MRT, RFC 7911 path identifiers)
    RIB_IPV4_UNICAST_ADDPATH = 8
    RIB_IPV4_MULTICAST_ADDPATH = 9
    RIB_IPV6_UNICAST_ADDPATH = 10
    RIB_IPV6_MULTICAST_ADDPATH = 11
    RIB_GENERIC_ADDPATH = 12


class Bgp4mp(IntEnum):
    STATE_CHANGE = 0
    MESSAGE = 1
    ENTRY = 2  # deprecated
    SNAPSHOT = 3  # deprecated
    MESSAGE_AS4 = 4
    STATE_CHANGE_AS4 = 5
    MESSAGE_LOCAL = 6
    MESSAGE_AS4_LOCAL = 7
    MESSAGE_ADDPATH = 8
    MESSAGE_AS4_ADDPATH = 9
    MESSAGE_LOCAL_ADDPATH = 10
    MESSAGE_AS4_LOCAL_ADDPATH = 11


class LegacyBgp(IntEnum):
    """Subtypes of the deprecated MRT type 5 (RFC 6396 Appendix B.2.3)."""

    NULL = 0
    UPDATE = 1
    PREF_UPDATE = 2
    STATE_CHANGE = 3
    SYNC = 4
    OPEN = 5
    NOTIFY = 6
    KEEPALIVE = 7


AFI_IP = 1
AFI_IP6 = 2

BGP4MP_AS4 = frozenset({4, 5, 7, 9, 11})
BGP4MP_LOCAL = frozenset({6, 7, 10, 11})
BGP4MP_ADDPATH = frozenset({8, 9, 10, 11})
BGP4MP_MESSAGES = frozenset({1, 4, 6, 7, 8, 9, 10, 11})
TDV2_ADDPATH = frozenset({8, 9, 10, 11, 12})

#: BGP message types (RFC 4271 §4.1)
BGP_OPEN, BGP_UPDATE, BGP_NOTIFICATION, BGP_KEEPALIVE = 1, 2, 3, 4
#: BGP FSM state "Established" (RFC 4271 §8.2.2; numbering of RFC 6396 §4.4.1)
STATE_ESTABLISHED = 6
