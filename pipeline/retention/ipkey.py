"""The sortable key of a client IP: 32 hex digits of its 128-bit value, IPv4 mapped into ::ffff:0:0/96.

Lexicographic order of the key is numeric order of the address, so an address is an equality and
a CIDR block is a closed range [first, last] on one string column, both pruned by row-group min/max.
"""

from __future__ import annotations

import ipaddress
import socket

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    # inet_pton is strict (no "1.2.3" shorthands) and ~20x faster than ipaddress for the common forms.
    try:
        return f"{_V4_MAPPED | int.from_bytes(socket.inet_pton(socket.AF_INET, text), 'big'):032x}"
    except OSError:
        pass
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


def key_codes(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The distinct keys of a column of IP strings (the last one null, for not-an-IP and null),
    each row's index into them, and each row's rank in key order (nulls last).

    Logs repeat few distinct addresses many times, so each distinct one is parsed once; callers
    that reorder rows take the keys once, in their final order.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    keys = [parse_key(u) for u in encoded.dictionary.to_pylist()]
    n = len(keys)
    # "~" sorts after every hex digit: not-an-IP ranks last, as nulls do in the store's sort.
    order = np.argsort(np.array([k or "~" for k in keys], dtype="U32"), kind="stable")
    rank = np.empty(n + 1, dtype=np.int64)
    rank[order] = np.arange(n)
    rank[n] = n
    codes = encoded.indices.fill_null(n).to_numpy(zero_copy_only=False)
    return pa.array(keys + [None], type=pa.string()), codes, rank[codes]


def keys_for(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Keys for a column of IP strings (not-an-IP and null give null), and each row's rank in key order
    (nulls last), so callers can sort on integers instead of strings."""
    distinct, codes, rank = key_codes(values)
    return distinct.take(pa.array(codes)), rank
