"""The http node's address guard, on real sockets: what it lets through and what it stops before connecting."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from spane_core.errors import BlockedAddress
from spane_core.settings import Settings
from spane_worker.executors.http_guard import AddressGuard, guarded_client, networks

pytestmark = pytest.mark.integration


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[int]]]:
    """A one-line HTTP server on 127.0.0.1; yields its port and a count of the connections it accepted."""
    accepted: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield port, accepted


async def get(guard: AddressGuard, url: str) -> httpx.Response:
    client = guarded_client(guard, 5.0)
    try:
        return await client.get(url)
    finally:
        await client.aclose()


async def test_the_default_deny_list_lets_ordinary_addresses_through(server: tuple[int, list[int]]) -> None:
    port, accepted = server
    defaults = Settings()
    guard = AddressGuard(networks(defaults.http_deny), networks(defaults.http_allow))
    assert (await get(guard, f"http://127.0.0.1:{port}/")).text == "ok"
    assert accepted == [1]


async def test_a_denied_network_is_refused_before_any_connection(server: tuple[int, list[int]]) -> None:
    port, accepted = server
    guard = AddressGuard(networks(["127.0.0.0/8", "::1/128"]))
    for host in ("127.0.0.1", "localhost"):  # by address and by a name that resolves to it
        with pytest.raises(BlockedAddress, match="SPANE_HTTP_DENY"):
            await get(guard, f"http://{host}:{port}/")
    assert accepted == []


async def test_the_allow_list_overrides_the_deny_list(server: tuple[int, list[int]]) -> None:
    port, _ = server
    guard = AddressGuard(networks(["127.0.0.0/8"]), networks(["127.0.0.1/32"]))
    assert (await get(guard, f"http://127.0.0.1:{port}/")).status_code == 200


def test_an_ipv4_mapped_address_is_judged_as_the_ipv4_one() -> None:
    guard = AddressGuard(networks(Settings().http_deny))
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "fe80::1%eth0"):
        with pytest.raises(BlockedAddress):
            guard.check(address, "metadata")
    guard.check("10.0.0.1", "internal")  # private ranges are the deployment's call (SPANE_HTTP_DENY)


def test_a_setting_that_is_not_a_network_is_refused_with_its_value() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0/33' is not a network")):
        Settings(http_deny=["10.0.0/33"])


async def test_the_unspecified_address_is_judged_as_the_local_host(server: tuple[int, list[int]]) -> None:
    port, accepted = server
    guard = AddressGuard(networks(["127.0.0.0/8", "::1/128"]))
    for host in ("0.0.0.0", "0", "[::]"):  # connecting to these reaches 127.0.0.1 on Linux
        with pytest.raises(BlockedAddress):
            await get(guard, f"http://{host}:{port}/")
    assert accepted == []


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a9fe:a9fe::1",  # 6to4 of it
        "::169.254.169.254",  # IPv4-compatible spelling
        "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo whose client is 169.254.169.254 (obfuscated: ~0x5601...)
        "::ffff:0.0.0.0",  # the unspecified address, mapped: the local host
    ],
)
def test_an_ipv6_address_that_embeds_a_denied_ipv4_one_is_refused(address: str) -> None:
    guard = AddressGuard(networks(["169.254.0.0/16", "127.0.0.0/8"]))
    with pytest.raises(BlockedAddress):
        guard.check(address, "embedded")


async def test_httpx_request_log_lines_leave_the_credentials_out(
    server: tuple[int, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    port, _ = server
    with caplog.at_level(logging.INFO, logger="httpx"):
        await get(AddressGuard([]), f"http://ada:pa55word@127.0.0.1:{port}/x?key=K3Y")
    logged = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert logged and all("pa55word" not in line and "K3Y" not in line for line in logged), logged
