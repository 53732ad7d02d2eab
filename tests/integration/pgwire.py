"""A minimal PostgreSQL v3 frontend (stdlib only) for the integration tests.

It speaks just enough of the protocol to log in (trust, cleartext, md5, SCRAM-SHA-256 with the
server's signature checked), run simple queries, and send deliberately broken bytes. Unlike
libpq it shows the SQLSTATE of a failed login and exactly when a connection closes.
"""

import base64
import hashlib
import hmac
import os
import socket
import struct
import time

PROTOCOL_3_0 = 196608


class PgError(Exception):
    """An ErrorResponse; `fields` maps field codes ('S', 'C', 'M', ...) to values."""

    def __init__(self, fields):
        self.fields = fields
        self.closed = False  # set when the connection closed right after this error
        super().__init__(f"{fields.get('S', '?')} {fields.get('C', '?')}: {fields.get('M', '')}")

    @property
    def sqlstate(self):
        return self.fields.get("C")


class Closed(Exception):
    """The peer closed the connection (EOF or reset)."""


def parse_fields(payload):
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def message(kind, payload=b""):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def startup_packet(params):
    body = struct.pack("!I", PROTOCOL_3_0)
    for key, value in params.items():
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


class Conn:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        self.backend_key = None
        self.parameters = {}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError("no answer in time") from e
        except ConnectionResetError as e:
            raise Closed("connection reset") from e
        if not chunk:
            raise Closed("connection closed")
        self.buffer += chunk

    def read_message(self, timeout=10.0):
        """Returns (type byte, payload); raises Closed on EOF, TimeoutError when nothing came."""
        deadline = time.monotonic() + timeout
        while len(self.buffer) < 5:
            self._fill(deadline)
        kind = self.buffer[:1]
        (length,) = struct.unpack("!I", self.buffer[1:5])
        if length < 4 or length > (1 << 30):
            raise ValueError(f"bad message length {length} for type {kind!r}")
        while len(self.buffer) < 1 + length:
            self._fill(deadline)
        payload = self.buffer[5 : 1 + length]
        self.buffer = self.buffer[1 + length :]
        return kind, payload

    def wait_closed(self, timeout=10.0):
        """Reads until EOF; returns the messages that came before it."""
        messages = []
        while True:
            try:
                messages.append(self.read_message(timeout))
            except Closed:
                return messages

    def login(self, user, database="postgres", password=None, params=None, timeout=10.0):
        all_params = {"user": user, "database": database}
        all_params.update(params or {})
        self.send(startup_packet(all_params))
        scram = None
        while True:
            kind, payload = self.read_message(timeout)
            if kind == b"E":
                raise PgError(parse_fields(payload))
            if kind == b"R":
                scram = self._authenticate(user, password, payload, scram)
            elif kind == b"S":
                key, value = payload.split(b"\0")[:2]
                self.parameters[key.decode()] = value.decode()
            elif kind == b"K":
                self.backend_key = struct.unpack("!II", payload)
            elif kind == b"Z":
                return
            elif kind == b"N":
                continue
            else:
                raise ValueError(f"unexpected message {kind!r} during login")

    def _authenticate(self, user, password, payload, scram):
        (code,) = struct.unpack("!I", payload[:4])
        if code == 0:
            if scram is not None and not scram.done:
                raise ValueError("AuthenticationOk before the SCRAM exchange finished")
            return scram
        if password is None:
            raise ValueError(f"server asked for a password (auth code {code}) but none given")
        if code == 3:
            self.send(message(b"p", password.encode() + b"\0"))
        elif code == 5:
            inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
            outer = hashlib.md5(inner.encode() + payload[4:8]).hexdigest()
            self.send(message(b"p", b"md5" + outer.encode() + b"\0"))
        elif code == 10:
            mechanisms = payload[4:].split(b"\0")
            if b"SCRAM-SHA-256" not in mechanisms:
                raise ValueError(f"no SCRAM-SHA-256 among {mechanisms}")
            scram = ScramClient(password)
            first = scram.client_first()
            body = b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first
            self.send(message(b"p", body))
        elif code == 11:
            self.send(message(b"p", scram.client_final(payload[4:])))
        elif code == 12:
            scram.verify_server_final(payload[4:])
        else:
            raise ValueError(f"unsupported authentication request {code}")
        return scram

    def query(self, sql, timeout=30.0):
        """Simple query; returns the rows (lists of str/None). Raises PgError after its
        ReadyForQuery arrived, so the connection stays usable."""
        self.send(message(b"Q", sql.encode() + b"\0"))
        return self.result(timeout)

    def result(self, timeout=30.0):
        """Reads one simple query's answer, up to its ReadyForQuery (see query)."""
        rows, error = [], None
        while True:
            try:
                kind, payload = self.read_message(timeout)
            except Closed:
                if error:  # e.g. a FATAL: report it, and that the connection is gone
                    error.closed = True
                    raise error
                raise
            if kind == b"D":
                rows.append(parse_data_row(payload))
            elif kind == b"E":
                # The first error is the statement's; a FATAL may follow to announce a close.
                error = error or PgError(parse_fields(payload))
            elif kind == b"Z":
                if error:
                    raise error
                return rows


def parse_data_row(payload):
    (count,) = struct.unpack("!H", payload[:2])
    offset, values = 2, []
    for _ in range(count):
        (length,) = struct.unpack("!i", payload[offset : offset + 4])
        offset += 4
        if length < 0:
            values.append(None)
        else:
            values.append(payload[offset : offset + length].decode())
            offset += length
    return values


class ScramClient:
    """The client side of SCRAM-SHA-256 (RFC 5802/7677) as libpq does it: no channel binding,
    empty user name in the exchange."""

    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18))
        self.first_bare = b"n=,r=" + self.nonce
        self.done = False

    def client_first(self):
        return b"n,," + self.first_bare

    def client_final(self, server_first):
        attributes = dict(part.split(b"=", 1) for part in server_first.split(b","))
        if not attributes[b"r"].startswith(self.nonce):
            raise ValueError("server nonce does not extend the client nonce")
        salt = base64.b64decode(attributes[b"s"])
        iterations = int(attributes[b"i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        final_bare = b"c=biws,r=" + attributes[b"r"]
        self.auth_message = self.first_bare + b"," + server_first + b"," + final_bare
        signature = hmac.digest(stored_key, self.auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_key = hmac.digest(salted, b"Server Key", "sha256")
        return final_bare + b",p=" + base64.b64encode(proof)

    def verify_server_final(self, server_final):
        attributes = dict(part.split(b"=", 1) for part in server_final.split(b","))
        expected = hmac.digest(self.server_key, self.auth_message, "sha256")
        if b"v" not in attributes or base64.b64decode(attributes[b"v"]) != expected:
            raise ValueError("the server's SCRAM signature is wrong: it does not know the secret")
        self.done = True


def connect(port, user="postgres", database="postgres", password=None, params=None,
            host="127.0.0.1", timeout=10.0):
    conn = Conn(host, port, timeout)
    try:
        conn.login(user, database, password, params, timeout)
    except BaseException:
        conn.close()
        raise
    return conn
