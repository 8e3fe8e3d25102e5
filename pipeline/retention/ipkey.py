"""The sortable key of a client IP: 32 hex digits of its 128-bit value, IPv4 mapped into ::ffff:0:0/96.

Lexicographic order of the key is numeric order of the address, so an address is an equality and
a CIDR block is a closed range [first, last] on one string column, both pruned by row-group min/max.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd
import pyarrow as pa

_V4_MAPPED = 0xFFFF << 32


def key_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    value = int(address)
    if address.version == 4:
        value |= _V4_MAPPED
    elif address.ipv4_mapped is not None:
        value = int(address.ipv4_mapped) | _V4_MAPPED
    return f"{value:032x}"


def parse_key(text: str) -> str | None:
    """Key of one address written as text (brackets and zone ids tolerated), None if it is not an IP."""
    text = text.strip().strip("[]")
    if "%" in text:
        text = text.split("%", 1)[0]
    try:
        return key_of(ipaddress.ip_address(text))
    except ValueError:
        return None


def range_of(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[str, str]:
    """First and last key of a CIDR block."""
    return key_of(network.network_address), key_of(network.broadcast_address)


def keys_for(values: pd.Series) -> pa.Array:
    """Keys for a column of IP strings; not-an-IP and null give null.

    Logs repeat few distinct addresses many times, so each distinct one is parsed once.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    keys = np.array([parse_key(str(u)) for u in uniques] + [None], dtype=object)
    # code -1 (null) picks the trailing None
    return pa.array(keys[codes], type=pa.string())
