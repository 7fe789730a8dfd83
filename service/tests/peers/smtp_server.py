"""A real SMTP server for the tests (aiosmtpd), with the behaviours the SMTP
transport must cope with: STARTTLS, AUTH PLAIN/LOGIN, AUTH XOAUTH2 (Gmail and
Microsoft styles of refusing a token) and injected 4xx/5xx replies.

    smtp_server.py --port 0 --maildir DIR [options]   prints "PORT <n>" first
    smtp_server.py --make-certs DIR                   writes a test CA and keys
    smtp_server.py --parse-eml FILE                   prints the message as JSON

Each accepted message is written to DIR/<n>.eml, and one JSON line is
appended to DIR/messages.jsonl: file, mail_from, rcpt_tos, connection (a
number per TCP connection), tls, auth_user, pipelined (whether RCPT TO had
already arrived when MAIL FROM was answered).
"""

import argparse
import asyncio
import base64
import datetime
import itertools
import json
import logging
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

FAIL_TEXT = {
    421: "421 4.3.2 Service shutting down",
    450: "450 4.2.1 Mailbox busy, try later",
    451: "451 4.3.0 Temporary local problem, try later",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 <{rcpt}>: Recipient address rejected: user unknown",
    552: "552 5.3.4 Message size exceeds fixed limit",
    554: "554 5.7.1 Message rejected as spam",
}


class Handler:
    def __init__(self, args):
        self.args = args
        self.failures = 0
        self.count = itertools.count(1)

    def _should_fail(self, stage):
        a = self.args
        if not a.fail_rcpt or a.fail_at != stage:
            return False
        if a.fail_times and self.failures >= a.fail_times:
            return False
        self.failures += 1
        return True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.args.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # What the client sent after MAIL FROM without waiting for its reply.
        waiting = bytes(server._reader._buffer)
        session.pipelined = b"RCPT TO" in waiting.upper()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.args.reject_address:
            return FAIL_TEXT[550].format(rcpt=address)
        if self._should_fail("rcpt"):
            return FAIL_TEXT[self.args.fail_rcpt].format(rcpt=address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.args.stall_data:
            # A server that hangs mid-conversation (crash-recovery tests).
            await asyncio.sleep(self.args.stall_data)
        if self._should_fail("data"):
            return FAIL_TEXT[self.args.fail_rcpt].format(rcpt=envelope.rcpt_tos[0])
        n = next(self.count)
        name = f"{n}.eml"
        with open(os.path.join(self.args.maildir, name), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        record = {
            "file": name,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "connection": server.connection_number,
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": auth_user(session),
            "pipelined": getattr(session, "pipelined", False),
        }
        with open(os.path.join(self.args.maildir, "messages.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.args.data_reply_delay:
            # A server that took the message (it is queued) but answers the
            # end of DATA late: a content filter, a slow disk.
            await asyncio.sleep(self.args.data_reply_delay)
        return f"250 2.0.0 Ok: queued as Q{n:05d}"

    async def auth_XOAUTH2(self, server, args):
        """SASL XOAUTH2: `user=U\\x01auth=Bearer T\\x01\\x01`, initial response."""
        if len(args) < 2:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Missing initial response")
        try:
            fields = base64.b64decode(args[1]).decode().split("\x01")
        except (ValueError, UnicodeDecodeError):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Can't decode base64")
        parts = dict(f.split("=", 1) for f in fields if "=" in f)
        token = parts.get("auth", "").removeprefix("Bearer ")
        if self.args.xoauth2_token and token == self.args.xoauth2_token:
            return AuthResult(success=True, auth_data=LoginPassword(parts.get("user", "").encode(), b""))
        if self.args.xoauth2_style == "gmail":
            # Gmail answers a bad token with a 334 JSON challenge, waits for
            # the client's empty line, then says 535.
            challenge = json.dumps({"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"})
            await server.challenge_auth(challenge)
            return AuthResult(success=False, handled=False,
                              message="535 5.7.8 Username and Password not accepted. gsmtp")
        return AuthResult(success=False, handled=False,
                          message="535 5.7.3 Authentication unsuccessful")


def auth_user(session):
    data = session.auth_data
    login = getattr(data, "login", None)
    return login.decode() if isinstance(login, bytes) else login


class PasswordCheck:
    def __init__(self, user, password):
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == self.user and auth_data.password == self.password)
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd then sends its own 535 reply.
        return AuthResult(success=False, handled=False)


def tls_context(args):
    if not args.tls_cert:
        return None
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.tls_cert, args.tls_key)
    return tls


class SlowSMTP(SMTP):
    """Answers every command only after a delay, like a distant provider."""

    reply_delay = 0.0

    async def push(self, status):
        await asyncio.sleep(self.reply_delay)
        await super().push(status)


def server_factory(args, handler):
    # With implicit TLS the listener does TLS, and STARTTLS is not offered.
    tls = None if args.implicit_tls else tls_context(args)
    numbers = itertools.count(1)
    authenticator = PasswordCheck(args.auth_user, args.auth_pass) if args.auth_user else None
    auth_required = bool(args.auth_user or args.xoauth2_token)

    def make():
        smtp_class = SMTP
        if args.reply_delay:
            smtp_class = type("DelayedSMTP", (SlowSMTP,), {"reply_delay": args.reply_delay})
        smtp = smtp_class(
            handler,
            hostname="peer.test",
            tls_context=tls,
            require_starttls=args.require_starttls,
            auth_required=auth_required,
            auth_require_tls=False,
            authenticator=authenticator,
            auth_exclude_mechanism=[] if authenticator else ["PLAIN", "LOGIN"],
            enable_SMTPUTF8=args.smtputf8,
        )
        smtp.connection_number = next(numbers)
        return smtp

    return make


async def serve(args):
    os.makedirs(args.maildir, exist_ok=True)
    loop = asyncio.get_running_loop()
    wrapper = tls_context(args) if args.implicit_tls else None
    server = await loop.create_server(server_factory(args, Handler(args)), "127.0.0.1", args.port,
                                      ssl=wrapper)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def make_certs(directory):
    """A CA and a server certificate for 127.0.0.1 and localhost, plus an RSA
    key pair for service-account tests."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    import ipaddress

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write(name, data):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key, srv_key, sa_key = key(), key(), key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbridge test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    srv = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
           .issuer_name(ca_name).public_key(srv_key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(days=1))
           .not_valid_after(now + datetime.timedelta(days=2))
           .add_extension(x509.SubjectAlternativeName([
               x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
               critical=False)
           .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                          critical=False)
           .sign(ca_key, hashes.SHA256()))
    write("ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    write("server.pem", srv.public_bytes(serialization.Encoding.PEM))
    write("server.key", pem_key(srv_key))
    write("service-account.key", pem_key(sa_key))
    write("service-account.pub", sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def parse_eml(path):
    """Reads a message with Python's own parser (as a mail client would) and
    prints its decoded headers and text parts as JSON."""
    import email
    from email import policy

    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=policy.default)
    headers = {}
    for name, value in msg.items():
        headers.setdefault(name.lower(), []).append(str(value))
    parts = [{"content_type": part.get_content_type(), "body": part.get_content()}
             for part in msg.walk() if not part.is_multipart()]
    print(json.dumps({"content_type": msg.get_content_type(), "headers": headers, "parts": parts}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--maildir")
    p.add_argument("--make-certs", metavar="DIR")
    p.add_argument("--parse-eml", metavar="FILE")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (smtps)")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--auth-user")
    p.add_argument("--auth-pass")
    p.add_argument("--xoauth2-token")
    p.add_argument("--xoauth2-style", choices=["gmail", "microsoft"], default="microsoft")
    p.add_argument("--fail-rcpt", type=int, choices=sorted(FAIL_TEXT))
    p.add_argument("--fail-at", choices=["rcpt", "data"], default="rcpt")
    p.add_argument("--fail-times", type=int, default=0, help="fail only the first N messages (0: all)")
    p.add_argument("--reply-delay", type=float, default=0, help="wait this many seconds before every reply")
    p.add_argument("--pipelining", action="store_true", help="offer PIPELINING (off by default, as aiosmtpd)")
    p.add_argument("--reject-address", action="append", default=[], help="refuse RCPT TO this address (550)")
    p.add_argument("--smtputf8", action="store_true", help="offer SMTPUTF8 (off by default, as aiosmtpd)")
    p.add_argument("--stall-data", type=float, default=0, help="wait this many seconds before answering DATA")
    p.add_argument("--data-reply-delay", type=float, default=0,
                   help="take the message at the end of DATA, then wait this many seconds before answering")
    args = p.parse_args()
    if args.make_certs:
        make_certs(args.make_certs)
        return
    if args.parse_eml:
        parse_eml(args.parse_eml)
        return
    if not args.maildir:
        p.error("--maildir is required")
    # AUTH without TLS is what some tests need; keep stderr for real errors.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
