#!/usr/bin/env python3
# A small S3 server on 127.0.0.1 for protocol-fault tests, with
# misbehaviours chosen while it runs.
#
#   fake-s3.py DIR
#
# It keeps objects in memory (PUT with If-None-Match, GET, HEAD, DELETE,
# ListObjectsV2 with prefix, max-keys and continuation tokens), checks no
# signature, writes its port to DIR/port once it listens and logs
# "METHOD PATH" of every request to DIR/log.  Before each request it reads
# DIR/mode (one word; absent or "ok": behave):
#
#   repeat-token  listings answer the first page again and again, with
#                 IsTruncated=true and the same NextContinuationToken
#   cycle-token   the same, with tokens alternating between two values
#   empty-token   IsTruncated=true with an empty NextContinuationToken
#   endless       IsTruncated=true, no keys, a new token each page
#   trickle       every answer arrives at 2 bytes a second
#   hang          every request is read and never answered
#   evil-error    every request is refused (403) with an error whose code
#                 and message carry terminal escape sequences, control
#                 characters and 64 KiB of text
#   drop-gets     object GETs are answered by closing the connection
#
# The listing modes spare the one-key listing (max-keys=1) with which a
# client probes the bucket when it opens it.
#
# Independently of the mode, each PUT of a key containing "/chunks/"
# first sleeps for the seconds DIR/delay holds (absent or 0: no delay),
# read at each PUT, so that a test can hold a copy in flight.
import http.server
import os
import socketserver
import sys
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

directory = sys.argv[1]
objects = {}
lock = threading.Lock()


def mode():
    try:
        with open(os.path.join(directory, "mode")) as f:
            return f.read().strip() or "ok"
    except FileNotFoundError:
        return "ok"


def delay():
    try:
        with open(os.path.join(directory, "delay")) as f:
            return float(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def listing(keys, truncated, token):
    body = ['<?xml version="1.0" encoding="UTF-8"?>',
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
            '<IsTruncated>%s</IsTruncated>' % ("true" if truncated else "false")]
    if token is not None:
        body.append('<NextContinuationToken>%s</NextContinuationToken>'
                    % escape(token))
    for key in keys:
        body.append('<Contents><Key>%s</Key><Size>%d</Size></Contents>'
                    % (escape(key), len(objects.get(key, b""))))
    body.append('</ListBucketResult>')
    return "".join(body).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    pages = 0

    def log_message(self, *args):
        pass

    def answer(self, code, body=b"", headers=()):
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, code, name, message=b""):
        self.answer(code, b"<Error><Code>" + name + b"</Code><Message>"
                    + message + b"</Message></Error>")

    def key(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else None

    def query(self):
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query,
                                           keep_blank_values=True))

    def misbehave(self, m):
        """Answer as mode M says; False when M leaves this request alone."""
        if m == "trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.flush()
            while True:
                self.wfile.write(b"<L")
                self.wfile.flush()
                time.sleep(1)
        if m == "hang":
            while True:
                time.sleep(3600)
        if m == "evil-error":
            self.error(403, b"Evil&#27;[2J\x1b]0;pwned\x07",
                       b"\x1b[31mred\x1b[0m &#27;[1;1H\r\x08\x9b"
                       + b"\xc2\x9b2J" + b"A" * 65536)
            return True
        if m == "drop-gets" and self.command == "GET" \
           and "list-type" not in self.query():
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        return False

    def handle_one(self):
        with open(os.path.join(directory, "log"), "a") as log:
            log.write("%s %s\n" % (self.command, self.path))
        length = int(self.headers.get("Content-Length", 0) or 0)
        body = self.rfile.read(length) if length else b""
        if self.misbehave(mode()):
            return
        key = self.key()
        if key is None:
            return self.list()
        if self.command == "PUT" and "/chunks/" in key:
            time.sleep(delay())
        with lock:
            if self.command == "PUT":
                if self.headers.get("If-None-Match") == "*" and key in objects:
                    return self.error(412, b"PreconditionFailed")
                objects[key] = body
                return self.answer(200)
            if self.command == "DELETE":
                objects.pop(key, None)
                return self.answer(204)
            if key not in objects:
                return self.error(404, b"NoSuchKey")
            data = objects[key]
        if self.command == "HEAD":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return
        self.answer(200, data)

    def list(self):
        q = self.query()
        prefix = q.get("prefix", "")
        max_keys = int(q.get("max-keys", "1000"))
        m = mode() if max_keys != 1 else "ok"
        with lock:
            keys = sorted(k for k in objects if k.startswith(prefix))
        if m == "repeat-token":
            return self.answer(200, listing(keys[:max_keys], True, "again"))
        if m == "cycle-token":
            token = "b" if q.get("continuation-token") == "a" else "a"
            return self.answer(200, listing(keys[:max_keys], True, token))
        if m == "empty-token":
            return self.answer(200, listing(keys[:max_keys], True, ""))
        if m == "endless":
            Handler.pages += 1
            return self.answer(200, listing([], True, "page%d" % Handler.pages))
        after = bytes.fromhex(q.get("continuation-token", "")).decode()
        keys = [k for k in keys if k > after]
        page, rest = keys[:max_keys], keys[max_keys:]
        token = page[-1].encode().hex() if rest else None
        self.answer(200, listing(page, bool(rest), token))

    do_GET = do_PUT = do_HEAD = do_DELETE = handle_one


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass                    # a client that gave up: nothing to say


server = Server(("127.0.0.1", 0), Handler)
with open(os.path.join(directory, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(directory, "port.tmp"), os.path.join(directory, "port"))
server.serve_forever()
