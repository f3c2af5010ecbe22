"""Who is calling, behind proxies: the client address from the peer and ``X-Forwarded-For``.

Behind a Kubernetes Ingress every request comes from the ingress's address, so a limit per address
would be a limit for everyone. ``X-Forwarded-For`` tells the real client, but anyone can send that
header: it is believed only when the direct peer is a configured trusted proxy, and then the
right-most address that is not itself a trusted proxy is the client (each proxy appends the peer
it saw; addresses left of the first untrusted one could be forged).

    >>> trusted = parse_networks(["10.0.0.0/8"])
    >>> client_address("10.1.2.3", "203.0.113.9, 10.4.5.6", trusted)
    '203.0.113.9'
    >>> client_address("198.51.100.7", "203.0.113.9", trusted)  # not a proxy of ours: the header is ignored
    '198.51.100.7'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """IP networks from addresses or CIDRs (``10.0.0.0/8``, ``::1``); ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network (CIDR)") from None
    return tuple(networks)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    """Whether ``address`` is in one of ``trusted`` (an IPv4-mapped IPv6 address counts as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy, else the right-most untrusted hop
    of ``forwarded_for`` (several X-Forwarded-For headers joined with ","; ``"unknown"`` when there
    is no peer). When every hop is a proxy, the farthest one."""
    address = peer or "unknown"
    if not trusted or not forwarded_for or not _trusted(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = hop
        if not _trusted(hop, trusted):
            break
    return address[:64]
