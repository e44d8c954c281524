"""SPDY/3.1 framing, as much of it as the Kubernetes streaming protocols use.

A v1.34 API server speaks SPDY/3.1 to a kubelet for exec, attach and
port-forward (it translates kubectl's WebSockets into it). The Go side
(moby/spdystream) uses SYN_STREAM, SYN_REPLY, DATA, RST_STREAM, PING, GOAWAY
and HEADERS, compresses header blocks with zlib and the SPDY/3 dictionary
(one compression context per direction and connection), and does no flow
control, so WINDOW_UPDATE and SETTINGS are read and otherwise ignored.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
MAX_FRAME = 0xFFFFFF
RST_PROTOCOL_ERROR, RST_CANCEL = 1, 5

# The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, section 2.6.10.1), 1423 bytes.
DICTIONARY = base64.b64decode(
    "AAAAB29wdGlvbnMAAAAEaGVhZAAAAARwb3N0AAAAA3B1dAAAAAZkZWxldGUAAAAFdHJhY2UAAAAGYWNjZXB0AAAADmFjY2VwdC1j"
    "aGFyc2V0AAAAD2FjY2VwdC1lbmNvZGluZwAAAA9hY2NlcHQtbGFuZ3VhZ2UAAAANYWNjZXB0LXJhbmdlcwAAAANhZ2UAAAAFYWxs"
    "b3cAAAANYXV0aG9yaXphdGlvbgAAAA1jYWNoZS1jb250cm9sAAAACmNvbm5lY3Rpb24AAAAMY29udGVudC1iYXNlAAAAEGNvbnRl"
    "bnQtZW5jb2RpbmcAAAAQY29udGVudC1sYW5ndWFnZQAAAA5jb250ZW50LWxlbmd0aAAAABBjb250ZW50LWxvY2F0aW9uAAAAC2Nv"
    "bnRlbnQtbWQ1AAAADWNvbnRlbnQtcmFuZ2UAAAAMY29udGVudC10eXBlAAAABGRhdGUAAAAEZXRhZwAAAAZleHBlY3QAAAAHZXhw"
    "aXJlcwAAAARmcm9tAAAABGhvc3QAAAAIaWYtbWF0Y2gAAAARaWYtbW9kaWZpZWQtc2luY2UAAAANaWYtbm9uZS1tYXRjaAAAAAhp"
    "Zi1yYW5nZQAAABNpZi11bm1vZGlmaWVkLXNpbmNlAAAADWxhc3QtbW9kaWZpZWQAAAAIbG9jYXRpb24AAAAMbWF4LWZvcndhcmRz"
    "AAAABnByYWdtYQAAABJwcm94eS1hdXRoZW50aWNhdGUAAAATcHJveHktYXV0aG9yaXphdGlvbgAAAAVyYW5nZQAAAAdyZWZlcmVy"
    "AAAAC3JldHJ5LWFmdGVyAAAABnNlcnZlcgAAAAJ0ZQAAAAd0cmFpbGVyAAAAEXRyYW5zZmVyLWVuY29kaW5nAAAAB3VwZ3JhZGUA"
    "AAAKdXNlci1hZ2VudAAAAAR2YXJ5AAAAA3ZpYQAAAAd3YXJuaW5nAAAAEHd3dy1hdXRoZW50aWNhdGUAAAAGbWV0aG9kAAAAA2dl"
    "dAAAAAZzdGF0dXMAAAAGMjAwIE9LAAAAB3ZlcnNpb24AAAAISFRUUC8xLjEAAAADdXJsAAAABnB1YmxpYwAAAApzZXQtY29va2ll"
    "AAAACmtlZXAtYWxpdmUAAAAGb3JpZ2luMTAwMTAxMjAxMjAyMjA1MjA2MzAwMzAyMzAzMzA0MzA1MzA2MzA3NDAyNDA1NDA2NDA3"
    "NDA4NDA5NDEwNDExNDEyNDEzNDE0NDE1NDE2NDE3NTAyNTA0NTA1MjAzIE5vbi1BdXRob3JpdGF0aXZlIEluZm9ybWF0aW9uMjA0"
    "IE5vIENvbnRlbnQzMDEgTW92ZWQgUGVybWFuZW50bHk0MDAgQmFkIFJlcXVlc3Q0MDEgVW5hdXRob3JpemVkNDAzIEZvcmJpZGRl"
    "bjQwNCBOb3QgRm91bmQ1MDAgSW50ZXJuYWwgU2VydmVyIEVycm9yNTAxIE5vdCBJbXBsZW1lbnRlZDUwMyBTZXJ2aWNlIFVuYXZh"
    "aWxhYmxlSmFuIEZlYiBNYXIgQXByIE1heSBKdW4gSnVsIEF1ZyBTZXB0IE9jdCBOb3YgRGVjIDAwOjAwOjAwIE1vbiwgVHVlLCBX"
    "ZWQsIFRodSwgRnJpLCBTYXQsIFN1biwgR01UY2h1bmtlZCx0ZXh0L2h0bWwsaW1hZ2UvcG5nLGltYWdlL2pwZyxpbWFnZS9naWYs"
    "YXBwbGljYXRpb24veG1sLGFwcGxpY2F0aW9uL3hodG1sK3htbCx0ZXh0L3BsYWluLHRleHQvamF2YXNjcmlwdCxwdWJsaWNwcml2"
    "YXRlbWF4LWFnZT1nemlwLGRlZmxhdGUsc2RjaGNoYXJzZXQ9dXRmLThjaGFyc2V0PWlzby04ODU5LTEsdXRmLSwqLGVucT0wLg=="
)


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3: the connection is closed."""


@dataclass
class Frame:
    """One frame: `kind` is a control type, or 0 for data. `headers` for the frame types that carry them."""

    kind: int
    stream: int = 0
    flags: int = 0
    data: bytes = b""  # data frames' payload; control frames' payload after the fields below
    headers: dict[str, list[str]] = field(default_factory=dict)
    associated: int = 0
    priority: int = 0
    status: int = 0  # RST_STREAM and GOAWAY
    ping_id: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class HeaderCodec:
    """The zlib contexts of one connection: one for what it receives, one for what it sends."""

    def __init__(self) -> None:
        self._in = zlib.decompressobj(zdict=DICTIONARY)
        self._out = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def decode(self, block: bytes) -> dict[str, list[str]]:
        try:
            raw = self._in.decompress(block)
        except zlib.error as e:
            raise ProtocolError(f"bad header block: {e}") from None
        headers: dict[str, list[str]] = {}
        try:
            (count,) = struct.unpack_from(">I", raw, 0)
            at = 4
            for _ in range(count):
                (n,) = struct.unpack_from(">I", raw, at)
                name = raw[at + 4:at + 4 + n].decode("latin-1").lower()
                at += 4 + n
                (n,) = struct.unpack_from(">I", raw, at)
                value = raw[at + 4:at + 4 + n].decode("latin-1")
                at += 4 + n
                headers[name] = value.split("\x00")
        except struct.error:
            raise ProtocolError("truncated header block") from None
        return headers

    def encode(self, headers: dict[str, list[str]]) -> bytes:
        raw = [struct.pack(">I", len(headers))]
        for name, values in headers.items():
            n, v = name.lower().encode("latin-1"), "\x00".join(values).encode("latin-1")
            raw += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
        return self._out.compress(b"".join(raw)) + self._out.flush(zlib.Z_SYNC_FLUSH)


def encode(frame: Frame, codec: HeaderCodec) -> bytes:
    """The frame's bytes; header blocks are compressed with `codec` (the sending side's context)."""
    if frame.kind == 0:
        return struct.pack(">II", frame.stream & 0x7FFFFFFF, (frame.flags << 24) | len(frame.data)) + frame.data
    if frame.kind == SYN_STREAM:
        body = struct.pack(">IIBB", frame.stream, frame.associated, (frame.priority & 7) << 5, 0) + codec.encode(frame.headers)
    elif frame.kind in (SYN_REPLY, HEADERS):
        body = struct.pack(">I", frame.stream) + codec.encode(frame.headers)
    elif frame.kind == RST_STREAM:
        body = struct.pack(">II", frame.stream, frame.status)
    elif frame.kind == PING:
        body = struct.pack(">I", frame.ping_id)
    elif frame.kind == GOAWAY:
        body = struct.pack(">II", frame.stream, frame.status)
    else:
        body = frame.data
    return struct.pack(">HHI", 0x8000 | VERSION, frame.kind, (frame.flags << 24) | len(body)) + body


class FrameReader:
    """Frames out of a byte stream, as bytes arrive; header blocks decompressed with `codec`."""

    def __init__(self, codec: HeaderCodec) -> None:
        self.codec = codec
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        frames = []
        while len(self.buf) >= 8:
            first, second = struct.unpack_from(">II", self.buf, 0)
            length = second & 0xFFFFFF
            if len(self.buf) < 8 + length:
                break
            payload = bytes(self.buf[8:8 + length])
            del self.buf[:8 + length]
            frames.append(self._frame(first, second >> 24, payload))
        return frames

    def _frame(self, first: int, flags: int, payload: bytes) -> Frame:
        if not first & 0x80000000:
            return Frame(0, stream=first & 0x7FFFFFFF, flags=flags, data=payload)
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}, expected {VERSION}")
        f = Frame(kind, flags=flags)
        try:
            if kind == SYN_STREAM:
                f.stream, f.associated, prio, _ = struct.unpack_from(">IIBB", payload, 0)
                f.stream &= 0x7FFFFFFF
                f.priority = prio >> 5
                f.headers = self.codec.decode(payload[10:])
            elif kind in (SYN_REPLY, HEADERS):
                (f.stream,) = struct.unpack_from(">I", payload, 0)
                f.stream &= 0x7FFFFFFF
                f.headers = self.codec.decode(payload[4:])
            elif kind in (RST_STREAM, GOAWAY):
                f.stream, f.status = struct.unpack_from(">II", payload, 0)
                f.stream &= 0x7FFFFFFF
            elif kind == PING:
                (f.ping_id,) = struct.unpack_from(">I", payload, 0)
            else:
                f.data = payload
        except struct.error:
            raise ProtocolError(f"truncated control frame of type {kind}") from None
        return f
