"""Many UDP datagrams per system call: recvmmsg(2) and sendmmsg(2) through ctypes (Linux).

Why: per relayed packet the system calls cost the relay more than the interpreter's work around them, and a
datagram sent in a ``sendmmsg`` batch costs about half the CPU of one sent alone (py-spy --native; docs/benchmarks.md,
"Where the relay's time goes"). Every client's packets arrive on the one listening socket and every packet to a
client leaves by it, so one ``recvmmsg`` takes in what queued there since the last wake-up, and one ``sendmmsg``
sends what the relay queued for clients during one turn of the event loop. Python's socket module has no batched
calls; ctypes reaches libc's without a compiler, on amd64 and arm64 alike (the struct layouts come from ctypes,
not from constants).

Buffers are allocated once per socket and reused: a datagram is read in place (a memoryview of its slot) and
must be copied by whoever keeps it past the callback that received it.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import socket
import sys
from collections.abc import Callable

MAX_DATAGRAM = 1 << 16  # a UDP payload is at most 65,507 bytes over IPv4, 65,527 over IPv6
MSG_DONTWAIT = 0x40  # <bits/socket.h>; Python's socket module has it, but not on every platform
_SOCKADDR_SIZE: dict[int, int] = {socket.AF_INET: 16, socket.AF_INET6: 28}  # sizeof(sockaddr_in), sizeof(sockaddr_in6)


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(None, use_errno=True)
_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
_recvmmsg.restype = ctypes.c_int
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int

# Offsets into the mmsghdr array, in 32-bit words, to read and write it through a memoryview (a ctypes field
# access costs ten times more, per datagram).
_WORDS = ctypes.sizeof(_MMsgHdr) // 4
_LEN = _MMsgHdr.msg_len.offset // 4


class _Slots:
    """``count`` message headers, each with one iovec on its own slot of ``size`` bytes and its own address."""

    def __init__(self, family: int, count: int, size: int) -> None:
        self.count = count
        self.size = size
        self.name_size = _SOCKADDR_SIZE[family]
        # An anonymous mapping: only the pages datagrams are written to become resident.
        self._memory = mmap.mmap(-1, count * size)
        self.data = memoryview(self._memory)
        self._names = ctypes.create_string_buffer(count * self.name_size)
        self.names = memoryview(self._names).cast("B")
        self.headers = (_MMsgHdr * count)()
        self.words = memoryview(self.headers).cast("B").cast("I")
        self.iovecs = (_IoVec * count)()
        self.iovec_words = memoryview(self.iovecs).cast("B").cast("L")  # iov_base, iov_len (size_t) of each
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self._memory))
        names = ctypes.addressof(self._names)
        for index in range(count):
            self.iovecs[index].iov_base = self.base + index * size
            self.iovecs[index].iov_len = size
            header = self.headers[index].msg_hdr
            header.msg_name = names + index * self.name_size
            header.msg_namelen = self.name_size
            header.msg_iov = ctypes.addressof(self.iovecs[index])
            header.msg_iovlen = 1


class Receiver:
    """Reads up to ``count`` datagrams from a non-blocking UDP socket with one ``recvmmsg`` call.

    Datagram ``i`` of a batch lies in place at ``data[i * slot : i * slot + lengths[i]]`` until the next
    :meth:`receive`; its sender's sockaddr at ``sources[i * name_size : (i + 1) * name_size]``.
    """

    def __init__(self, family: int, count: int = 32) -> None:
        self._slots = _Slots(family, count, MAX_DATAGRAM)
        self.count = count
        self.data = self._slots.data
        self.slot = MAX_DATAGRAM
        self.name_size = self._slots.name_size

    def receive(self, fd: int) -> tuple[list[int], bytes]:
        """Read what is queued on ``fd``, up to ``count`` datagrams: their lengths, and their senders' sockaddrs
        end to end. Nothing when nothing is queued, or on an error (for an unconnected UDP socket, one about a
        datagram already gone)."""
        slots = self._slots
        # The kernel sets each msg_namelen to the size of its family's sockaddr, which is what it was set to:
        # nothing to reset between calls.
        count = _recvmmsg(fd, slots.headers, self.count, MSG_DONTWAIT, None)
        if count <= 0:
            return [], b""
        return slots.words[_LEN : count * _WORDS : _WORDS].tolist(), slots.names[: count * self.name_size].tobytes()


class Sender:
    """Datagrams queued for one non-blocking UDP socket and sent with one ``sendmmsg`` call.

    :meth:`add` copies the datagram into its slot, so the caller's buffer is free at once. The queue is sent
    when it is full and on :meth:`flush`; the first :meth:`add` after a flush asks ``schedule`` to call
    :meth:`flush` soon (the event loop's ``call_soon``: after the callbacks of this turn of the loop).
    """

    def __init__(self, fd: int, family: int, schedule: Callable[[Callable[[], None]], object],
                 count: int = 64) -> None:
        self.fd = fd
        self._slots = _Slots(family, count, MAX_DATAGRAM)
        self._schedule = schedule
        self.queued = 0
        self.dropped = 0  # datagrams the kernel refused (its send buffer full): UDP may drop them
        self.closed = False

    def add(self, data: bytes | memoryview, destination: bytes, prefix: bytes = b"") -> None:
        """Queue ``prefix + data`` for ``destination`` (a sockaddr, as :meth:`Receiver.source` gives)."""
        index = self.queued
        if index == 0:
            self._schedule(self.flush)
        slots = self._slots
        start = index * slots.size
        head = len(prefix)
        end = start + head + len(data)
        if head:
            slots.data[start : start + head] = prefix
        slots.data[start + head : end] = data
        slots.iovec_words[2 * index + 1] = end - start
        name = index * slots.name_size
        slots.names[name : name + len(destination)] = destination
        self.queued = index + 1
        if index + 1 == slots.count:
            self.flush()

    def close(self) -> None:
        """Send what is queued; from now on, drop it instead (the socket is about to close, and its descriptor
        may soon be another socket's)."""
        self.flush()
        self.closed = True

    def flush(self) -> None:
        """Send what is queued; what the kernel does not take at once is dropped and counted."""
        queued = self.queued
        if not queued:
            return
        if self.closed:
            self.queued = 0
            self.dropped += queued
            return
        self.queued = 0
        sent = 0
        while sent < queued:
            done = _sendmmsg(self.fd, ctypes.byref(self._slots.headers, sent * ctypes.sizeof(_MMsgHdr)),
                             queued - sent, MSG_DONTWAIT)
            if done > 0:
                sent += done
                continue
            if ctypes.get_errno() in (errno.EAGAIN, errno.ENOBUFS):
                break
            sent += 1  # this datagram was refused (e.g. EMSGSIZE, EPERM from a firewall): skip it
            self.dropped += 1
        self.dropped += queued - sent


def address(family: int, name: bytes) -> tuple[str, int] | tuple[str, int, int, int]:
    """The socket module's address tuple for the sockaddr bytes ``name``: (host, port), or for IPv6 (host, port,
    flowinfo, scope_id)."""
    port = name[2] << 8 | name[3]
    if family == socket.AF_INET:
        return socket.inet_ntoa(name[4:8]), port
    return (socket.inet_ntop(socket.AF_INET6, name[8:24]), port, int.from_bytes(name[4:8], "big"),
            int.from_bytes(name[24:28], sys.byteorder))


def sockaddr(family: int, addr: tuple[str, int] | tuple[str, int, int, int]) -> bytes:
    """The sockaddr bytes of the address tuple ``addr`` for a socket of ``family``: the inverse of
    :func:`address`."""
    head = family.to_bytes(2, sys.byteorder) + addr[1].to_bytes(2, "big")
    if family == socket.AF_INET:
        return head + socket.inet_aton(addr[0]) + bytes(8)
    flowinfo, scope = addr[2:] if len(addr) == 4 else (0, 0)
    return head + flowinfo.to_bytes(4, "big") + socket.inet_pton(family, addr[0]) + scope.to_bytes(4, sys.byteorder)
