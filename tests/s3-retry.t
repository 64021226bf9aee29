#!/usr/bin/env bash
# The S3 backend's retries, against a small scripted HTTP server on
# 127.0.0.1 that answers with failures that may pass (503 SlowDown, 500,
# a dropped connection) before a real answer: the request is retried,
# signed afresh each time (a new x-amz-date is allowed, the same one is
# not required), up to retries=N, and a refusal (403) is never retried.
. "$(dirname "$0")/functions.sh"

require_tool python3

# The server: each line of $tmp/script is the answer to one GET, in
# order ("503", "500", "drop", "403", "ok"); it logs "METHOD PATH DATE".
# An "ok" listing is empty, an "ok" object GET is 404 and every PUT
# succeeds, so that a region's owner mark is read and written.
cat >"$tmp/server.py" <<'PY'
import http.server, socketserver, sys, os
script_path, log_path, port_path = sys.argv[1:4]
listing = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
           b'<IsTruncated>false</IsTruncated></ListBucketResult>')
errors = {"503": (503, b"SlowDown", b"Please reduce your request rate."),
          "500": (500, b"InternalError", b"We encountered an internal error."),
          "403": (403, b"AccessDenied", b"Access Denied")}
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        with open(script_path) as f:
            lines = f.read().split()
        with open(log_path, "a") as log:
            log.write("%s %s %s\n" % (self.command, self.path,
                                      self.headers.get("x-amz-date")))
        answer = lines.pop(0) if lines else "ok"
        with open(script_path, "w") as f:
            f.write("\n".join(lines))
        if answer == "drop":
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        if answer == "ok" and "list-type=" not in self.path:
            code, body = 404, b"<Error><Code>NoSuchKey</Code></Error>"
        elif answer == "ok":
            code, body = 200, listing
        else:
            code, name, message = errors[answer]
            body = (b"<Error><Code>" + name + b"</Code><Message>" + message
                    + b"</Message></Error>")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        # The owner mark a new region writes.
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
server = Server(("127.0.0.1", 0), Handler)
with open(port_path + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_path + ".tmp", port_path)
server.serve_forever()
PY
: >"$tmp/script"
python3 "$tmp/server.py" "$tmp/script" "$tmp/log" "$tmp/port" &
started_pids+=("$!")
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
endpoint=http://127.0.0.1:$(cat "$tmp/port")
export AWS_ACCESS_KEY_ID=AKTEST AWS_SECRET_ACCESS_KEY=secret AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL AWS_SESSION_TOKEN

xs init -q
fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
answers () { printf '%s\n' "$@" >"$tmp/script"; : >"$tmp/log"; }
# The requests of region add's probe (a listing of one key), which the
# scripted answers are for.
probes () { grep 'max-keys=1&' "$tmp/log" || true; }
requests () { probes | wc -l; }

answers 503 500 drop ok
check "503, 500 and a dropped connection are retried until the answer" -- \
  quietly xs region add r1 --backend "s3://bucket/r1?endpoint=$endpoint"
is "$(requests)" 4 "... four requests in all"
is "$(probes | awk '{ print $1, $2 }' | sort -u | wc -l)" 1 \
   "... all the same request"

answers 503 503 503
check "with retries=1, two failures are the end" -- \
  fails xs region add r2 --backend "s3://bucket/r2?endpoint=$endpoint&retries=1"
like "$(cat "$tmp/err")" "HTTP 503 SlowDown: Please reduce your request rate" \
     "... reported with the server's code and message"
is "$(requests)" 2 "... after exactly two requests"

answers 403 ok
check "a refusal is final" -- \
  fails xs region add r3 --backend "s3://bucket/r3?endpoint=$endpoint"
like "$(cat "$tmp/err")" "access denied: HTTP 403 AccessDenied" "... and said"
is "$(requests)" 1 "... and never retried"

answers 500 500 500 500 500
check "the default is 4 retries" -- \
  fails xs region add r4 --backend "s3://bucket/r4?endpoint=$endpoint"
is "$(requests)" 5 "... five requests in all"

done_testing
