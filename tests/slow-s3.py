#!/usr/bin/env python3
"""A small in-memory S3 server on 127.0.0.1 (path-style, signatures not
checked) whose object PUTs can be made slow, for tests of what happens
while a copy to an S3 region is under way.

  slow-s3.py PORT_FILE DELAY_FILE

PORT_FILE receives the port once the server listens.  Each PUT of an
object whose key contains "/chunks/" first sleeps for the number of
seconds DELAY_FILE holds (0 or missing: no delay), read at each PUT so a
test can slow the server down and speed it up again.
"""
import http.server
import os
import socketserver
import sys
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

port_path, delay_path = sys.argv[1:3]
objects = {}
lock = threading.Lock()


def delay():
    try:
        with open(delay_path) as f:
            return float(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0.0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, body=b"", head_only=False):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def split(self):
        url = urllib.parse.urlsplit(self.path)
        key = urllib.parse.unquote(url.path.lstrip("/"))
        return key, urllib.parse.parse_qs(url.query)

    def do_PUT(self):
        key, _ = self.split()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if "/chunks/" in key:
            time.sleep(delay())
        with lock:
            if self.headers.get("If-None-Match") == "*" and key in objects:
                return self.answer(412, b"<Error><Code>PreconditionFailed"
                                   b"</Code></Error>")
            objects[key] = body
        self.answer(200)

    def do_GET(self, head_only=False):
        key, query = self.split()
        if "list-type" in query:
            return self.listing(key, query)
        with lock:
            body = objects.get(key)
        if body is None:
            return self.answer(404, b"<Error><Code>NoSuchKey</Code></Error>",
                               head_only)
        self.answer(200, body, head_only)

    def do_HEAD(self):
        self.do_GET(head_only=True)

    def do_DELETE(self):
        key, _ = self.split()
        with lock:
            objects.pop(key, None)
        self.answer(204)

    def listing(self, bucket, query):
        prefix = bucket.rstrip("/") + "/" + query.get("prefix", [""])[0]
        start = query.get("continuation-token", [""])[0]
        most = int(query.get("max-keys", ["1000"])[0])
        with lock:
            keys = sorted(k for k in objects if k.startswith(prefix)
                          and k > start)
        page, more = keys[:most], len(keys) > most
        strip = len(bucket.rstrip("/")) + 1
        body = ['<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>',
                "<IsTruncated>%s</IsTruncated>" % ("true" if more else
                                                   "false")]
        body += ["<Contents><Key>%s</Key></Contents>" % escape(k[strip:])
                 for k in page]
        if more:
            body.append("<NextContinuationToken>%s</NextContinuationToken>"
                        % escape(page[-1]))
        body.append("</ListBucketResult>")
        self.answer(200, "".join(body).encode())


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass                    # a client killed in the middle: expected


server = Server(("127.0.0.1", 0), Handler)
with open(port_path + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_path + ".tmp", port_path)
server.serve_forever()
