#!/usr/bin/env python3
# A small read-only NBD server on a Unix socket that serves a file with a
# qemu:dirty-bitmap context whose runs are given, not tracked: for the
# dirty bitmaps no real server can produce (runs finer than 512 bytes)
# and for a source that is slow enough to vanish in the middle of an
# import.
#
#   fake-dirty-nbd.py SOCKET FILE BITMAP RUNS [DELAY]
#
# RUNS is OFFSET+LENGTH[,OFFSET+LENGTH...]: the dirty runs of bitmap
# BITMAP (everything else is clean).  base:allocation calls everything
# data.  Each read first sleeps DELAY seconds (default 0).  Fixed
# newstyle handshake, structured replies, one client at a time.
import os
import socket
import struct
import sys
import time

NBD_OPT_ABORT, NBD_OPT_INFO, NBD_OPT_GO = 2, 6, 7
NBD_OPT_STRUCTURED_REPLY = 8
NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT = 9, 10
NBD_REP_ACK, NBD_REP_INFO, NBD_REP_META_CONTEXT = 1, 3, 4
NBD_REP_ERR_UNSUP = (1 << 31) | 1
OPT_REPLY_MAGIC = 0x3e889045565a9
REQUEST_MAGIC, STRUCTURED_MAGIC = 0x25609513, 0x668e33ef
CMD_READ, CMD_DISC, CMD_FLUSH, CMD_BLOCK_STATUS = 0, 2, 3, 7
CMD_FLAG_REQ_ONE = 8
REPLY_DONE = 1
TYPE_NONE, TYPE_OFFSET_DATA, TYPE_BLOCK_STATUS = 0, 1, 5
TYPE_ERROR = (1 << 15) | 1
FLAG_HAS_FLAGS, FLAG_READ_ONLY, FLAG_SEND_FLUSH = 1, 2, 4
EINVAL = 22

path, image, bitmap, runs_text = sys.argv[1:5]
delay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
data = open(image, 'rb').read()
size = len(data)
runs = []
for item in runs_text.split(','):
    offset, length = item.split('+')
    runs.append((int(offset), int(length)))
contexts = {'base:allocation': 1, 'qemu:dirty-bitmap:' + bitmap: 2}


def recv_all(conn, n):
    buf = b''
    while len(buf) < n:
        part = conn.recv(n - len(buf))
        if not part:
            raise EOFError
        buf += part
    return buf


def opt_reply(conn, opt, kind, payload=b''):
    conn.sendall(struct.pack('>QIII', OPT_REPLY_MAGIC, opt, kind,
                             len(payload)) + payload)


def requested_contexts(payload):
    name_len = struct.unpack_from('>I', payload, 0)[0]
    pos = 4 + name_len
    count = struct.unpack_from('>I', payload, pos)[0]
    pos += 4
    names = []
    for _ in range(count):
        n = struct.unpack_from('>I', payload, pos)[0]
        names.append(payload[pos + 4:pos + 4 + n].decode())
        pos += 4 + n
    return names


def negotiate(conn):
    """Options until GO; returns the chosen context ids or None."""
    conn.sendall(b'NBDMAGIC' + b'IHAVEOPT' + struct.pack('>H', 3))
    recv_all(conn, 4)                               # client flags
    chosen = {}
    while True:
        magic, opt, length = struct.unpack('>QII', recv_all(conn, 16))
        payload = recv_all(conn, length)
        if opt == NBD_OPT_STRUCTURED_REPLY:
            opt_reply(conn, opt, NBD_REP_ACK)
        elif opt in (NBD_OPT_SET_META_CONTEXT, NBD_OPT_LIST_META_CONTEXT):
            names = requested_contexts(payload)
            if opt == NBD_OPT_LIST_META_CONTEXT and not names:
                names = list(contexts)
            for name in names:
                if name in contexts:
                    if opt == NBD_OPT_SET_META_CONTEXT:
                        chosen[contexts[name]] = name
                    opt_reply(conn, opt, NBD_REP_META_CONTEXT,
                              struct.pack('>I', contexts[name])
                              + name.encode())
            opt_reply(conn, opt, NBD_REP_ACK)
        elif opt in (NBD_OPT_INFO, NBD_OPT_GO):
            flags = FLAG_HAS_FLAGS | FLAG_READ_ONLY | FLAG_SEND_FLUSH
            opt_reply(conn, opt, NBD_REP_INFO,
                      struct.pack('>HQH', 0, size, flags))
            opt_reply(conn, opt, NBD_REP_ACK)
            if opt == NBD_OPT_GO:
                return chosen
        elif opt == NBD_OPT_ABORT:
            opt_reply(conn, opt, NBD_REP_ACK)
            return None
        else:
            opt_reply(conn, opt, NBD_REP_ERR_UNSUP)


def chunk(conn, flags, kind, handle, payload):
    conn.sendall(struct.pack('>IHHQI', STRUCTURED_MAGIC, flags, kind, handle,
                             len(payload)) + payload)


def dirty_descriptors(offset, length):
    """(length, flags) runs of the bitmap over [offset, offset + length)."""
    out, pos, end = [], offset, offset + length
    for run_offset, run_length in sorted(runs):
        run_end = run_offset + run_length
        if run_end <= pos or run_offset >= end:
            continue
        if run_offset > pos:
            out.append((run_offset - pos, 0))
            pos = run_offset
        stop = min(run_end, end)
        out.append((stop - pos, 1))
        pos = stop
    if pos < end:
        out.append((end - pos, 0))
    return out


def block_status(conn, handle, offset, length, flags, chosen):
    ids = sorted(chosen)
    for i, cid in enumerate(ids):
        if chosen[cid] == 'base:allocation':
            descs = [(length, 0)]
        else:
            descs = dirty_descriptors(offset, length)
        if flags & CMD_FLAG_REQ_ONE:
            descs = descs[:1]
        payload = struct.pack('>I', cid) + b''.join(
            struct.pack('>II', n, f) for n, f in descs)
        chunk(conn, REPLY_DONE if i == len(ids) - 1 else 0,
              TYPE_BLOCK_STATUS, handle, payload)
    if not ids:
        chunk(conn, REPLY_DONE, TYPE_NONE, handle, b'')


def serve(conn):
    chosen = negotiate(conn)
    if chosen is None:
        return
    while True:
        magic, flags, kind, handle, offset, length = struct.unpack(
            '>IHHQQI', recv_all(conn, 28))
        if kind == CMD_DISC:
            return
        if kind == CMD_READ:
            time.sleep(delay)
            chunk(conn, REPLY_DONE, TYPE_OFFSET_DATA, handle,
                  struct.pack('>Q', offset) + data[offset:offset + length])
        elif kind == CMD_BLOCK_STATUS:
            block_status(conn, handle, offset, min(length, size - offset),
                         flags, chosen)
        elif kind == CMD_FLUSH:
            chunk(conn, REPLY_DONE, TYPE_NONE, handle, b'')
        else:
            chunk(conn, REPLY_DONE, TYPE_ERROR, handle,
                  struct.pack('>IH', EINVAL, 0))


def main():
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    while True:
        conn, _ = server.accept()
        try:
            serve(conn)
        except (EOFError, ConnectionError, BrokenPipeError):
            pass
        finally:
            conn.close()


main()
