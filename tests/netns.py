"""Network namespaces for multi-node tests: one namespace per gateway node, each with its own
address on a private bridge (veth pairs), so nodes are separate hosts as far as TCP can tell.

Needs root and iproute2 (installed through tests/debian.py when missing). When namespaces
cannot be made (no CAP_SYS_ADMIN in a container, say) ``make_network`` falls back to
127.0.0.x loopback addresses in the one namespace and says why in ``Network.fallback``.

A TCP relay (``Relay``) gives the nodes a way to the PostgreSQL on 127.0.0.1, which they cannot
reach from inside their namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import subprocess
from dataclasses import dataclass, field

from tests.debian import ensure_debian_package


@dataclass
class Network:
    host_ip: str  # the test's (root namespace) address on the bridge
    node_ips: list[str]
    namespaces: list[str]  # empty when fallen back to loopback
    fallback: str = ""  # why namespaces were not used
    _links: list[str] = field(default_factory=list)

    def prefix(self, i: int) -> list[str]:
        """Command prefix that runs a process in node ``i``'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[i]] if self.namespaces else []

    def teardown(self) -> None:
        for ns in self.namespaces:
            _ip("netns", "del", ns, check=False)
        for link in self._links:
            _ip("link", "del", link, check=False)


def _ip(*args: str, check: bool = True) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def make_network(nodes: int) -> Network:
    ensure_debian_package("ip", "iproute2")
    tag = secrets.token_hex(2)
    subnet = f"10.{random.randrange(100, 250)}.{random.randrange(1, 250)}"
    net = Network(f"{subnet}.1", [f"{subnet}.{11 + i}" for i in range(nodes)], [])
    bridge = f"rbr{tag}"
    try:
        _ip("link", "add", bridge, "type", "bridge")
        net._links.append(bridge)
        _ip("addr", "add", f"{net.host_ip}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i in range(nodes):
            ns, veth, peer = f"payam-rel-{tag}-{i}", f"rv{tag}{i}", f"rp{tag}{i}"
            _ip("netns", "add", ns)
            net.namespaces.append(ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            net._links.append(veth)
            _ip("link", "set", peer, "netns", ns)
            _ip("link", "set", veth, "master", bridge, "up")
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{net.node_ips[i]}/24", "dev", peer)
            _ip("netns", "exec", ns, "ip", "link", "set", peer, "up")
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        subprocess.run(
            ["ip", "netns", "exec", net.namespaces[0], "ping", "-c1", "-W2", net.host_ip],
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        net.teardown()
        return Network(
            "127.0.0.1",
            [f"127.0.0.{11 + i}" for i in range(nodes)],
            [],
            fallback=str(exc),
        )
    return net


class Relay:
    """Forward TCP from ``listen`` to ``target`` (both host, port), byte for byte."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen, self.target = listen, target
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, *self.listen)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        tasks = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.close()
