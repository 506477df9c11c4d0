"""Where the ``http`` node may connect: a deny list of networks, with an allow list that overrides it.

A workflow definition names any URL; without a guard, its author reaches whatever the worker can (a cloud's
metadata endpoint hands out the machine's credentials). The check runs when a connection is opened, on every address
the host name resolves to, and the connection is then made to that checked address, so a name that resolves to an
allowed address when checked and to a denied one when connecting (DNS rebinding) gets nowhere. Redirects open their
connections the same way. A configured HTTP proxy is where the guard then applies (the proxy is the egress control).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx
from spane_core.errors import BlockedAddress

from spane_worker.executors.http_redact import redact_httpx_logs

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def networks(items: Iterable[str]) -> list[Network]:
    """CIDRs (or single addresses) as networks; ``ValueError`` names the first that is not one."""
    return [ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip()]


class AddressGuard:
    def __init__(self, deny: Sequence[Network], allow: Sequence[Network] = ()) -> None:
        self.deny = list(deny)
        self.allow = list(allow)

    def check(self, address: str, host: str) -> None:
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone
        candidates = [ip, *reached_through(ip)]
        if any(c in net for c in candidates for net in self.allow):
            return
        if any(c in net for c in candidates for net in self.deny):
            raise BlockedAddress(f"http: {host} resolves to {ip}, in a network nodes may not reach (SPANE_HTTP_DENY)")


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: a NAT64 gateway reaches the IPv4 in the last 32 bits
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291's deprecated ::a.b.c.d


def reached_through(ip: Address) -> list[Address]:
    """The other addresses that connecting to ``ip`` reaches, to be judged as well: the local host for an
    unspecified address (0.0.0.0 and :: connect to it), and the IPv4 address an IPv6 one embeds (mapped, NAT64,
    6to4, Teredo, IPv4-compatible), so that a deny list of IPv4 networks holds whatever the spelling."""
    if ip.is_unspecified or ip in ipaddress.ip_network("0.0.0.0/8"):
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    embedded: list[Address] = []
    if ip.ipv4_mapped is not None:
        embedded.append(ip.ipv4_mapped)  # ::ffff:169.254.169.254 is 169.254.169.254
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:
        embedded.append(ip.teredo[1])
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [a for e in embedded for a in (e, *reached_through(e))]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the guard in front of every TCP connection."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, guard: AddressGuard) -> None:
        self.inner = inner
        self.guard = guard

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:  # every address the name has: any of them may be the one connected to
            self.guard.check(address, host)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                failure = e
        raise failure or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("http: unix sockets are not reachable from nodes")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client(guard: AddressGuard, timeout_s: float) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` (redirects followed; proxies from the environment as usual) whose direct
    connections pass the guard; httpx's request log lines show its URLs without credentials."""
    redact_httpx_logs()
    client = httpx.AsyncClient(follow_redirects=True, timeout=timeout_s)
    # httpx has no public hook for the network backend; its default transport's pool keeps it here (the guard's
    # tests fail if that changes).
    pool: Any = client._transport._pool  # type: ignore[attr-defined]
    pool._network_backend = GuardedBackend(pool._network_backend, guard)
    return client
