"""Raw HTTP/1.1 on sockets, for tests that must see every byte a client library would hide:
a buffered reader that frames messages exactly (chunked bodies kept raw, trailers included) and
RawBackend, a threaded keep-alive backend that records exactly what it received and answers
what the test scripts per path."""
import socket
import threading
import time


class Reader:
    """Buffered reads from a blocking socket; every read has the socket's timeout."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _more(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError(f"EOF with {len(self.buf)} bytes buffered: {self.buf[:200]!r}")
        self.buf += chunk

    def until(self, sep):
        while sep not in self.buf:
            self._more()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def to_eof(self):
        while True:
            try:
                self._more()
            except EOFError:
                out, self.buf = self.buf, b""
                return out

    def chunked(self):
        """The raw bytes of a chunked body, trailers and final CRLF included."""
        out = b""
        while True:
            line = self.until(b"\r\n")
            out += line
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while True:
                    t = self.until(b"\r\n")
                    out += t
                    if t == b"\r\n":
                        return out
            out += self.exact(size + 2)


def parse_head(head):
    """(start line, [(lowercase name, value)]) of a head ending in CRLF CRLF."""
    lines = head[:-4].split(b"\r\n")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
    return lines[0].decode("latin-1"), fields


def field(fields, name):
    vals = [v for n, v in fields if n == name]
    return vals[0] if vals else None


def read_response(reader, head_request=False):
    """One response: (interim heads, final head bytes, raw body bytes, closed). A response with
    neither Content-Length nor chunked reads to EOF (close-delimited)."""
    interim = []
    while True:
        head = reader.until(b"\r\n\r\n")
        line, fields = parse_head(head)
        status = int(line.split(" ")[1])
        if status >= 200:
            break
        interim.append(head)
    if head_request or status in (204, 304):
        return interim, head, b"", False
    if (field(fields, "transfer-encoding") or "").lower() == "chunked":
        return interim, head, reader.chunked(), False
    cl = field(fields, "content-length")
    if cl is not None:
        return interim, head, reader.exact(int(cl)), False
    return interim, head, reader.to_eof(), True


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, Reader(s)


class RawBackend:
    """A keep-alive HTTP/1.1 backend on 127.0.0.1 that records every request raw.

    RESPOND(method, target, fields, body) returns a list of actions: bytes to send, a float
    (seconds to sleep), "close" (close the connection), "drip" (send each following bytes
    action one byte at a time), "cork" (hold what follows until the close, so the answer and
    the FIN leave in one segment). A request whose target holds "drop-if-reused" that is not
    the first on its connection is recorded and its connection closed unanswered, as a
    server's keep-alive timeout racing the request does. One whose target holds "early-answer"
    gets a 413 at once; the body is then read and the connection closed. Requests with "Expect: 100-continue" get their interim answer
    from EXPECT(target) -> bytes (b"" to read the body without one) before the body is read;
    an EXPECT answer that is final (417) ends the exchange without reading the body.
    self.requests: (connection number, head bytes, raw body bytes), in arrival order;
    self.garbage: what a connection sent that was not a request.
    """

    def __init__(self, respond, expect=None):
        self.respond, self.expect = respond, expect or (lambda target: b"HTTP/1.1 100 Continue\r\n\r\n")
        self.requests, self.garbage, self.conns = [], [], 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stopped = True
        self.sock.close()

    def _accept(self):
        while not self.stopped:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            threading.Thread(target=self._serve, args=(s, n), daemon=True).start()

    def _send(self, s, actions):
        drip = False
        for a in actions:
            if a == "close":
                return False
            if a == "drip":
                drip = True
            elif a == "cork":
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            elif isinstance(a, float):
                time.sleep(a)
            elif drip:
                for i in range(len(a)):
                    s.sendall(a[i:i + 1])
                    time.sleep(0.001)
            else:
                s.sendall(a)
        return True

    def _serve(self, s, n):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(30)
        r = Reader(s)
        served = 0
        try:
            while True:
                try:
                    head = r.until(b"\r\n\r\n")
                except EOFError:
                    if r.buf:
                        self.garbage.append((n, r.buf))
                    return
                line, fields = parse_head(head)
                parts = line.split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    self.garbage.append((n, head))
                    return
                method, target = parts[0], parts[1]
                if (field(fields, "expect") or "").lower() == "100-continue":
                    interim = self.expect(target)
                    if interim[9:10] != b"1":  # a final answer: no body follows
                        with self.lock:
                            self.requests.append((n, head, None))
                        s.sendall(interim)
                        continue
                    s.sendall(interim)
                if "early-answer" in target:  # 413 before the body, then drain it and close
                    s.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 7\r\n\r\ntoo big")
                    body = r.exact(int(field(fields, "content-length") or 0))
                    with self.lock:
                        self.requests.append((n, head, body))
                    return
                te = (field(fields, "transfer-encoding") or "").lower()
                body = r.chunked() if te == "chunked" else r.exact(
                    int(field(fields, "content-length") or 0))
                with self.lock:
                    self.requests.append((n, head, body))
                served += 1
                if "drop-if-reused" in target and served > 1:
                    return
                if not self._send(s, self.respond(method, target, fields, body)):
                    return
        except (OSError, EOFError, ValueError) as e:
            self.garbage.append((n, repr(e).encode()))
        finally:
            s.close()


def dechunk(raw):
    """The data of a raw chunked body (trailers dropped)."""
    out = b""
    while True:
        line, _, raw = raw.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return out
        out, raw = out + raw[:size], raw[size + 2:]
