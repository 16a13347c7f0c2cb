"""A minimal RFC 6455 WebSocket endpoint for the ComfyUI test server (stdlib only).

No WebSocket server package is installed, and the test server needs very little: the
opening handshake, unmasked text/binary frames to the client, masked frames from it
(text, ping, close; continuation frames are reassembled). Sends are serialised by a lock
because the executor thread and the handler thread both write.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_FRAME = 16 << 20


def accept_key(client_key: str) -> str:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((client_key + GUID).encode()).digest()).decode()


def handshake_response(client_key: str) -> bytes:
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(client_key)}\r\n\r\n").encode()


class Closed(Exception):
    """The peer closed the connection (or it broke)."""


class Connection:
    """One accepted WebSocket: thread-safe sends, blocking receives."""

    def __init__(self, sock: socket.socket, reader):
        self.sock = sock
        self.reader = reader  # buffered reader of the HTTP handler (may hold bytes already read)
        self.lock = threading.Lock()
        self.closed = False
        self.wants_metadata = False  # set by a feature_flags message (supports_preview_metadata)

    def _send(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        size = len(payload)
        if size < 126:
            header += bytes([size])
        elif size < 1 << 16:
            header += bytes([126]) + struct.pack(">H", size)
        else:
            header += bytes([127]) + struct.pack(">Q", size)
        with self.lock:
            if self.closed:
                raise Closed()
            try:
                self.sock.sendall(header + payload)
            except OSError as exc:
                self.closed = True
                raise Closed() from exc

    def send_text(self, text: str) -> None:
        self._send(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self._send(OP_BINARY, data)

    def _read_exact(self, count: int) -> bytes:
        data = self.reader.read(count)
        if data is None or len(data) < count:
            raise Closed()
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read_exact(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        size = second & 0x7F
        if size == 126:
            size = struct.unpack(">H", self._read_exact(2))[0]
        elif size == 127:
            size = struct.unpack(">Q", self._read_exact(8))[0]
        if size > MAX_FRAME:
            raise Closed()
        mask = self._read_exact(4) if second & 0x80 else b""
        payload = self._read_exact(size) if size else b""
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    def receive(self) -> tuple[int, bytes]:
        """The next data message (opcode, payload); answers pings, raises Closed on close."""
        parts: list[bytes] = []
        message_opcode = None
        while True:
            try:
                fin, opcode, payload = self._frame()
            except (OSError, ValueError) as exc:
                raise Closed() from exc
            if opcode == OP_PING:
                self._send(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                try:
                    self._send(OP_CLOSE, payload[:2])
                except Closed:
                    pass
                self.close()
                raise Closed()
            if opcode != OP_CONT:
                message_opcode = opcode
            parts.append(payload)
            if fin and message_opcode is not None:
                return message_opcode, b"".join(parts)

    def close(self, abrupt: bool = False) -> None:
        """Close the connection; `abrupt` drops it without a close frame (a dying server)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        try:
            if not abrupt:
                self.sock.sendall(bytes([0x80 | OP_CLOSE, 2]) + struct.pack(">H", 1000))
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
