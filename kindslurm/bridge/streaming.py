"""exec, attach and port-forward: the outer API server's upgraded connection
relayed to the pod's own inner API server.

The outer API server opens SPDY/3.1 to the kubelet (it translates kubectl's
WebSockets to it). The bridge upgrades a connection of its own to the inner
API server with the same protocol versions offered, answers the outer one
with the version the inner one chose, and relays frames: same stream ids,
same headers (recompressed, as each connection has its own zlib context),
same data; pings are answered on each side. The streaming protocol itself
(v4.channel.k8s.io, portforward.k8s.io) passes through untouched, so the
inner kubelet serves it exactly as it serves kubectl. A client that speaks
the old WebSocket protocols to the outer API server gets them relayed as
WebSocket messages the same way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from kindslurm.bridge import spdy
from kindslurm.bridge.inner import InnerAPI

log = logging.getLogger("kindslurm.bridge")
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
_KUBELET_FLAGS = {"input": "stdin", "output": "stdout", "error": "stderr", "tty": "tty"}


def inner_path(kind: str, namespace: str, pod: str, container: str | None, query: Any) -> str:
    """The inner API server's subresource for a kubelet streaming request and its options."""
    params: list[tuple[str, str]] = []
    if kind in ("exec", "attach"):
        params.append(("container", container or ""))
        for name, value in query.items():
            if name == "command" and kind == "exec":
                params.append(("command", value))
            elif name in _KUBELET_FLAGS and value in ("1", "true"):
                params.append((_KUBELET_FLAGS[name], "true"))
            elif name in _KUBELET_FLAGS.values() and value in ("1", "true"):
                params.append((name, "true"))
    else:
        params += [("ports", v) for k, v in query.items() if k in ("port", "ports")]
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/{'portforward' if kind == 'portForward' else kind}"
    return path + ("?" + urlencode(params) if params else "")


class _Feed:
    """aiohttp hands an upgraded connection's bytes to a parser object: this one fills a StreamReader."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


async def _dial(inner: InnerAPI, path: str, protocols: list[str]) -> tuple[int, dict[str, str], bytes,
                                                                           asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        inner.host, inner.port, ssl=inner.ssl, server_hostname=inner.server_name), timeout=15)
    head = [f"POST {path} HTTP/1.1", f"Host: {inner.server_name}:{inner.port}", "Connection: Upgrade",
            "Upgrade: SPDY/3.1", "Content-Length: 0", *(f"{PROTOCOL_HEADER}: {p}" for p in protocols)]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
    lines = raw.decode("latin-1").split("\r\n")
    code = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = b""
    if code != 101:
        length = int(headers.get("content-length", "0") or 0)
        try:
            body = await asyncio.wait_for(reader.readexactly(length) if length else reader.read(65536), timeout=10)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        writer.close()
    return code, headers, body, reader, writer


async def spdy_relay(request: web.Request, inner: InnerAPI, path: str) -> web.StreamResponse:
    protocols = [p.strip() for v in request.headers.getall(PROTOCOL_HEADER, []) for p in v.split(",") if p.strip()]
    code, headers, body, ireader, iwriter = await _dial(inner, path, protocols)
    if code != 101:
        return web.Response(status=code, body=body, content_type=headers.get("content-type", "text/plain").split(";")[0])
    resp = web.StreamResponse(status=101, headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1"})
    if headers.get(PROTOCOL_HEADER.lower()):
        resp.headers[PROTOCOL_HEADER] = headers[PROTOCOL_HEADER.lower()]
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None and request.protocol is not None
    oreader = asyncio.StreamReader(limit=2**24)
    request.protocol.keep_alive(False)
    request.protocol.set_parser(_Feed(oreader))  # type: ignore[arg-type]
    await _Relay(oreader, transport, ireader, iwriter).run()
    return resp


class _Relay:
    def __init__(self, oreader: asyncio.StreamReader, otransport: asyncio.BaseTransport,
                 ireader: asyncio.StreamReader, iwriter: asyncio.StreamWriter) -> None:
        self.oreader, self.otransport = oreader, otransport
        self.ireader, self.iwriter = ireader, iwriter
        self.to_outer, self.to_inner = spdy.HeaderCodec(), spdy.HeaderCodec()  # each side's sending context
        self.from_outer, self.from_inner = spdy.FrameReader(spdy.HeaderCodec()), spdy.FrameReader(spdy.HeaderCodec())

    def _send_outer(self, frame: spdy.Frame) -> None:
        if not self.otransport.is_closing():
            self.otransport.write(spdy.encode(frame, self.to_outer))  # type: ignore[attr-defined]

    async def _send_inner(self, frame: spdy.Frame) -> None:
        self.iwriter.write(spdy.encode(frame, self.to_inner))
        await self.iwriter.drain()

    async def _outer_to_inner(self) -> None:
        while data := await self.oreader.read(65536):
            for f in self.from_outer.feed(data):
                if f.kind == spdy.PING:
                    self._send_outer(f)
                elif f.kind == spdy.GOAWAY:
                    return
                elif f.kind in (0, spdy.SYN_STREAM, spdy.RST_STREAM, spdy.HEADERS):
                    await self._send_inner(f)

    async def _inner_to_outer(self) -> None:
        while data := await self.ireader.read(65536):
            for f in self.from_inner.feed(data):
                if f.kind == spdy.PING:
                    await self._send_inner(f)
                elif f.kind == spdy.GOAWAY:
                    return
                elif f.kind in (0, spdy.SYN_REPLY, spdy.RST_STREAM, spdy.HEADERS):
                    self._send_outer(f)

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(self._outer_to_inner()), asyncio.ensure_future(self._inner_to_outer())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t.exception() is not None and not isinstance(t.exception(), (ConnectionError, spdy.ProtocolError)):
                    log.warning("stream relay: %r", t.exception())
        finally:
            for t in tasks:
                t.cancel()
            self.iwriter.close()
            self.otransport.close()


async def websocket_relay(request: web.Request, inner: InnerAPI, path: str,
                          session: aiohttp.ClientSession) -> web.StreamResponse:
    """The old WebSocket protocols (channel.k8s.io and friends) relayed message by message."""
    offered = [p.strip() for v in request.headers.getall("Sec-WebSocket-Protocol", []) for p in v.split(",") if p.strip()]
    try:
        upstream = await session.ws_connect(inner.url(path), protocols=offered, ssl=inner.ssl,
                                            server_hostname=inner.server_name, method="GET", autoping=True,
                                            max_msg_size=0)
    except aiohttp.WSServerHandshakeError as e:
        return web.Response(status=e.status, text=e.message)
    ws = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (), max_msg_size=0)
    await ws.prepare(request)

    async def pump(src: Any, dst: Any) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            else:
                break

    tasks = [asyncio.ensure_future(pump(ws, upstream)), asyncio.ensure_future(pump(upstream, ws))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await upstream.close()
        await ws.close()
    return ws


def is_websocket(headers: Mapping[str, str]) -> bool:
    return headers.get("Upgrade", "").lower() == "websocket"
