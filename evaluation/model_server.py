#!/usr/bin/python3
"""Scripted OpenAI-compatible model server for the casa evaluation (stdlib only).

Serves, on 127.0.0.1 (default port 18080):
  POST /v1/chat/completions   streaming (SSE) and non-streaming
  POST /v1/responses          streaming (SSE) and non-streaming
  GET  /v1/models

The turn logic is stateless. The newest real user message (OpenClaw's internal-context user
messages are skipped) carries a ``[case:ID]`` marker; the turn number is the number of
assistant turns after that message. Turn ``i`` answers with the tool calls scripted in
``cases.json`` (``turns[i]``); once the turns are exhausted the case's ``final`` text is sent.
An unknown or missing case gets a plain text answer saying so.

Every request is appended to ``--log`` as one JSON line: time, api, case, run marker
(``[run:ID]``), turn, the tool results seen in this request and what was replied.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CASE_RE = re.compile(r"\[case:([A-Za-z0-9_.-]+)\]")
RUN_RE = re.compile(r"\[run:([A-Za-z0-9_.-]+)\]")
PART_RE = re.compile(r"\[part:([0-9]+)\]")
INTERNAL_MARK = "BEGIN_OPENCLAW_INTERNAL_CONTEXT"
MODEL_ID = "scripted"


def load_cases(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {c["id"]: c for c in doc["cases"]}


def text_of(content):
    """Plain text of a chat/responses message content (string or list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                for key in ("text", "output", "content"):
                    if isinstance(part.get(key), str):
                        out.append(part[key])
                        break
        return "\n".join(out)
    if isinstance(content, dict):
        return text_of(content.get("text") or content.get("content"))
    return str(content)


def is_real_user(text):
    return INTERNAL_MARK not in text


def call_id(case_id, run, turn, index):
    """Alphanumeric tool-call id (OpenClaw strips '_' from chat ids)."""
    digest = hashlib.sha1(f"{case_id}|{run}|{turn}|{index}".encode()).hexdigest()[:10]
    return f"call{case_id.lower()}t{turn}n{index}x{digest}"


# ---------------------------------------------------------------- conversation analysis

def analyse_chat(messages):
    """(user_text, turn, tool_results) for a chat-completions message list."""
    user_idx = None
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.get("role") == "user" and is_real_user(text_of(m.get("content"))):
            user_idx = i
            break
    if user_idx is None:
        return "", 0, []
    user_text = text_of(messages[user_idx].get("content"))
    turn = 0
    results = []
    for m in messages[user_idx + 1:]:
        role = m.get("role")
        if role == "assistant":
            turn += 1
        elif role == "tool":
            results.append({"call_id": m.get("tool_call_id", ""), "text": text_of(m.get("content"))})
    return user_text, turn, results


def analyse_responses(items):
    """(user_text, turn, tool_results) for a Responses API input list."""
    if isinstance(items, str):
        return items, 0, []
    user_idx = None
    for i in range(len(items) - 1, -1, -1):
        it = items[i]
        if it.get("role") == "user" and it.get("type", "message") == "message":
            if is_real_user(text_of(it.get("content"))):
                user_idx = i
                break
    if user_idx is None:
        return "", 0, []
    user_text = text_of(items[user_idx].get("content"))
    turn = 0
    results = []
    prev_call = False
    for it in items[user_idx + 1:]:
        typ = it.get("type", "message")
        if typ == "function_call":
            if not prev_call:
                turn += 1
            prev_call = True
            continue
        prev_call = False
        if typ == "function_call_output":
            results.append({"call_id": it.get("call_id", ""), "text": text_of(it.get("output"))})
        elif typ == "message" and it.get("role") == "assistant":
            turn += 1
    return user_text, turn, results


class Script:
    """What to reply for one request."""

    def __init__(self, cases, user_text, turn):
        m = CASE_RE.search(user_text or "")
        r = RUN_RE.search(user_text or "")
        self.case_id = m.group(1) if m else None
        self.run = r.group(1) if r else None
        self.turn = turn
        self.case = cases.get(self.case_id) if self.case_id else None
        self.calls = []
        self.text = None
        if self.case is None:
            if self.case_id:
                self.text = f"Unknown case {self.case_id}: this scripted model has no script for it."
            else:
                self.text = "No [case:ID] marker found: this scripted model only replays scripted cases."
            return
        turns = self.case.get("turns", [])
        final = self.case.get("final", "Done.")
        p = PART_RE.search(user_text or "")
        if p and self.case.get("parts"):
            # A case run as several OpenClaw sessions: `[part:N]` picks the N-th part's turns.
            n = int(p.group(1))
            if not 1 <= n <= len(self.case["parts"]):
                self.text = f"Case {self.case_id} has no part {n}."
                return
            part = self.case["parts"][n - 1]
            turns, final = part.get("turns", []), part.get("final", final)
        if turn < len(turns):
            for i, call in enumerate(turns[turn]):
                self.calls.append({
                    "id": call_id(self.case_id, self.run or "", turn, i),
                    "name": call["tool"],
                    "arguments": json.dumps(call.get("args", {})),
                })
        else:
            self.text = final


# ---------------------------------------------------------------- HTTP

class Handler(BaseHTTPRequestHandler):
    server_version = "casa-scripted-model/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    # -- helpers
    def _send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, obj, event=None):
        data = b""
        if event:
            data += f"event: {event}\n".encode()
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        data += f"data: {payload}\n\n".encode()
        self.wfile.write(data)
        self.wfile.flush()

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw or b"{}")

    def _log(self, api, script, results, stream):
        entry = {
            "time": time.time(), "api": api, "path": self.path, "stream": stream,
            "case": script.case_id, "run": script.run, "turn": script.turn,
            "known_case": script.case is not None,
            "tool_results": results,
            "reply_calls": [{"id": c["id"], "name": c["name"], "arguments": c["arguments"]}
                            for c in script.calls],
            "reply_text": script.text,
        }
        self.server.write_log(entry)

    # -- routes
    def do_GET(self):
        try:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send_json(200, {"object": "list", "data": [
                    {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "casa-eval"}]})
            elif self.path.rstrip("/") in ("", "/health", "/v1"):
                self._send_json(200, {"ok": True})
            else:
                self._send_json(404, {"error": {"message": "not found"}})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):
        try:
            try:
                req = self._read_body()
            except ValueError:
                self._send_json(400, {"error": {"message": "invalid JSON"}})
                return
            path = self.path.split("?", 1)[0].rstrip("/")
            if path in ("/v1/chat/completions", "/chat/completions"):
                self._chat(req)
            elif path in ("/v1/responses", "/responses"):
                self._responses(req)
            else:
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # client went away: nothing to do

    def _chat(self, req):
        user_text, turn, results = analyse_chat(req.get("messages") or [])
        script = Script(self.server.cases, user_text, turn)
        stream = bool(req.get("stream"))
        self._log("chat", script, results, stream)
        rid = "chatcmpl" + hashlib.sha1(f"{time.time()}{turn}".encode()).hexdigest()[:20]
        created = int(time.time())
        model = req.get("model") or MODEL_ID
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        finish = "tool_calls" if script.calls else "stop"
        if not stream:
            msg = {"role": "assistant", "content": script.text}
            if script.calls:
                msg["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
                    "name": c["name"], "arguments": c["arguments"]}} for c in script.calls]
            self._send_json(200, {"id": rid, "object": "chat.completion", "created": created,
                                  "model": model, "choices": [{"index": 0, "message": msg,
                                                               "finish_reason": finish}],
                                  "usage": usage})
            return
        self._start_sse()

        def chunk(delta, finish_reason=None):
            return {"id": rid, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                 "finish_reason": finish_reason}]}

        self._sse(chunk({"role": "assistant", "content": ""}))
        if script.calls:
            for i, c in enumerate(script.calls):
                self._sse(chunk({"tool_calls": [{"index": i, "id": c["id"], "type": "function",
                                                 "function": {"name": c["name"], "arguments": ""}}]}))
                self._sse(chunk({"tool_calls": [{"index": i, "function": {"arguments": c["arguments"]}}]}))
        else:
            self._sse(chunk({"content": script.text}))
        self._sse(chunk({}, finish))
        if (req.get("stream_options") or {}).get("include_usage"):
            self._sse({"id": rid, "object": "chat.completion.chunk", "created": created,
                       "model": model, "choices": [], "usage": usage})
        self._sse("[DONE]")

    def _responses(self, req):
        user_text, turn, results = analyse_responses(req.get("input") or [])
        script = Script(self.server.cases, user_text, turn)
        stream = bool(req.get("stream"))
        self._log("responses", script, results, stream)
        seed = hashlib.sha1(f"{time.time()}{turn}{id(req)}".encode()).hexdigest()
        rid = "resp" + seed[:20]
        model = req.get("model") or MODEL_ID
        usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                 "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens_details": {"reasoning_tokens": 0}}
        output = []
        if script.calls:
            for i, c in enumerate(script.calls):
                output.append({"type": "function_call", "id": f"fc{seed[:12]}{i}", "call_id": c["id"],
                               "name": c["name"], "arguments": c["arguments"], "status": "completed"})
        else:
            output.append({"type": "message", "id": f"msg{seed[:12]}", "role": "assistant",
                           "status": "completed", "content": [{"type": "output_text",
                                                               "text": script.text, "annotations": []}]})

        def response(status, out):
            return {"id": rid, "object": "response", "created_at": int(time.time()),
                    "status": status, "model": model, "output": out,
                    "usage": usage if status == "completed" else None}

        if not stream:
            self._send_json(200, response("completed", output))
            return
        self._start_sse()
        seq = 0

        def ev(typ, **fields):
            nonlocal seq
            fields["type"] = typ
            fields["sequence_number"] = seq
            seq += 1
            self._sse(fields, event=typ)

        ev("response.created", response=response("in_progress", []))
        ev("response.in_progress", response=response("in_progress", []))
        for idx, item in enumerate(output):
            if item["type"] == "function_call":
                ev("response.output_item.added", output_index=idx,
                   item=dict(item, arguments="", status="in_progress"))
                ev("response.function_call_arguments.delta", item_id=item["id"], output_index=idx,
                   delta=item["arguments"])
                ev("response.function_call_arguments.done", item_id=item["id"], output_index=idx,
                   arguments=item["arguments"])
                ev("response.output_item.done", output_index=idx, item=item)
            else:
                text = item["content"][0]["text"]
                ev("response.output_item.added", output_index=idx,
                   item=dict(item, content=[], status="in_progress"))
                part = {"type": "output_text", "text": "", "annotations": []}
                ev("response.content_part.added", item_id=item["id"], output_index=idx,
                   content_index=0, part=part)
                ev("response.output_text.delta", item_id=item["id"], output_index=idx,
                   content_index=0, delta=text)
                ev("response.output_text.done", item_id=item["id"], output_index=idx,
                   content_index=0, text=text)
                ev("response.content_part.done", item_id=item["id"], output_index=idx,
                   content_index=0, part=dict(part, text=text))
                ev("response.output_item.done", output_index=idx, item=item)
        ev("response.completed", response=response("completed", output))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, cases, log_path):
        super().__init__(addr, Handler)
        self.cases = cases
        self.log_path = log_path
        self._lock = threading.Lock()

    def write_log(self, entry):
        if not self.log_path:
            return
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)


def make_server(cases_path, port=18080, log_path=None, host="127.0.0.1"):
    """A ready (not yet serving) server; call ``serve_forever()`` on it, e.g. in a thread."""
    return Server((host, port), load_cases(cases_path), log_path)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=os.path.join(here, "cases.json"))
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", default=None, help="JSONL request log")
    args = ap.parse_args(argv)
    srv = make_server(args.cases, args.port, args.log, args.host)
    print(f"scripted model on http://{args.host}:{args.port}/v1 "
          f"({len(srv.cases)} cases, log {args.log or '-'})", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
