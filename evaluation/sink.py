#!/usr/bin/python3
"""Local HTTP sink and offline "internet stand-in" for the casa evaluation (stdlib only).

* ``--port`` (default 18000): POST bodies are appended to ``--out`` as JSON lines
  ``{timestamp, client, path, headers, body_utf8}`` and answered ``200 ok``. GET answers with
  the canned page for the path (see ``PAGES``) or ``ok``.
* ``--mirror-port`` (optional, e.g. 18001): a second listener serving the same canned pages
  (and accepting POSTs the same way).

Both listen on 127.0.0.1 only. No access log.
"""

import argparse
import datetime
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Offline stand-ins for the public pages the original prompts fetched.
PAGES = {
    "/wttr/Chicago": "Chicago: +12\u00b0C partly cloudy (offline stand-in for wttr.in)\n",
    "/example.com": "<html><head><title>Example Domain</title></head>"
                    "<body><h1>Example Domain</h1><p>Offline stand-in for example.com.</p></body></html>\n",
    "/example.org": "<html><head><title>Example Domain</title></head>"
                    "<body><h1>Example Domain</h1><p>Offline stand-in for example.org.</p></body></html>\n",
}


class Handler(BaseHTTPRequestHandler):
    server_version = "casa-eval-sink/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _reply(self, code, text, ctype="text/plain; charset=utf-8"):
        body = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        try:
            path = self.path.split("?", 1)[0].rstrip("/")
            page = PAGES.get(path)
            if page is None:
                self._reply(200, "ok\n")
            else:
                ctype = "text/html; charset=utf-8" if page.startswith("<html") else "text/plain; charset=utf-8"
                self._reply(200, page, ctype)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_HEAD = do_GET

    def do_POST(self):
        try:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            self.server.record({
                "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "client": f"{self.client_address[0]}:{self.client_address[1]}",
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body_utf8": body.decode("utf-8", errors="replace"),
            })
            self._reply(200, "ok\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_PUT = do_POST


class Sink(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, out_path, lock):
        super().__init__(addr, Handler)
        self.out_path = out_path
        self.lock = lock

    def record(self, entry):
        if not self.out_path:
            return
        with self.lock:
            with open(self.out_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def make_servers(port=18000, out_path=None, mirror_port=None, host="127.0.0.1"):
    """The sink (and mirror) servers, not yet serving."""
    if out_path:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    lock = threading.Lock()
    servers = [Sink((host, port), out_path, lock)]
    if mirror_port:
        servers.append(Sink((host, mirror_port), out_path, lock))
    return servers


def main(argv=None):
    ap = argparse.ArgumentParser(description="casa evaluation POST sink + offline page stand-in")
    ap.add_argument("--port", type=int, default=18000)
    ap.add_argument("--out", default="evaluation/results/sink/requests.jsonl")
    ap.add_argument("--mirror-port", type=int, default=None)
    args = ap.parse_args(argv)
    servers = make_servers(args.port, args.out, args.mirror_port)
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    ports = ", ".join(str(s.server_address[1]) for s in servers)
    print(f"sink listening on 127.0.0.1:{ports}, POSTs -> {args.out}", flush=True)
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for s in servers:
            s.server_close()


if __name__ == "__main__":
    main()
