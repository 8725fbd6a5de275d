"""The guard against server-side request forgery: http_request reaches public addresses
only, unless the server allows more.

The check sits where the connection is made (an httpcore network backend): the host is
resolved once, every address it resolves to is checked, and the connection goes to the
checked address itself, so a DNS answer that changes between the check and the connect
(rebinding) cannot lead it elsewhere. TLS still verifies the certificate against the host
name. Every hop of a redirect connects through the same backend, so a redirect to a
private address is refused like a first request to it.
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpcore

from ..errors import AddressRefused

__all__ = ["AddressPolicy", "GuardedBackend"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# IPv6 prefixes that carry an IPv4 address in their last 32 bits: NAT64 (RFC 6052),
# IPv4-translated (RFC 2765) and the deprecated IPv4-compatible form.
_CARRIES_IPV4 = tuple(ipaddress.IPv6Network(n) for n in (
    "64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
# Not public whatever the Python release says: NAT64's local-use prefix (RFC 8215) and the
# deprecated site-local addresses.
LOCAL_IPV6 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "fec0::/10"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, translated or
    compatible), or None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _CARRIES_IPV4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outbound requests may reach: public ones, and with
    ``allow_private`` any, or those in ``networks`` (tests allow the loopback this way)."""

    allow_private: bool = False
    networks: tuple[Network, ...] = ()

    def allows(self, address: Address) -> bool:
        """Whether a connection to ``address`` may be made."""
        if isinstance(address, ipaddress.IPv6Address):
            if any(address in network for network in LOCAL_IPV6):
                return self.allow_private or any(address in network
                                                 for network in self.networks)
            # ::ffff:127.0.0.1 is the loopback too, and 64:ff9b::a9fe:a9fe the metadata
            # address through a NAT64 gateway: an IPv4 address inside is judged as itself.
            address = embedded_ipv4(address) or address
        if self.allow_private or any(address in network for network in self.networks
                                     if network.version == address.version):
            return True
        return address.is_global and not address.is_multicast

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` to connect to, all of them checked; raises
        :class:`AddressRefused` if any is not allowed (a host that resolves to a public and
        a private address is refused: which one a connect would take is not ours to say)."""
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        refused = [a for a in addresses if not self.allows(ipaddress.ip_address(a))]
        if refused or not addresses:
            said = (f"{host} is not a public address" if refused == [host]
                    else f"{host} resolves to {', '.join(refused) or 'nothing'}, which is not "
                    "a public address")
            raise AddressRefused(
                f"{said}; the server does not allow requests there (HTTP_ALLOW_PRIVATE, "
                "HTTP_ALLOWED_NETWORKS).", host=host)
        return addresses


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's synchronous backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve and check ``host``, then connect to a checked address."""
        addresses: Sequence[str] = self.policy.resolve(host, port)
        error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address,
                                           socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error
