"""A stand-in for Amazon SNS's own HTTPS endpoints, for the SES event tests.

    sns_peer.py DIR     makes a test CA, a TLS certificate for
                        sns.us-east-1.amazonaws.com signed by it, and an SNS
                        signing key with its certificate, all in DIR; serves
                        HTTPS on 127.0.0.1 and prints "PORT <n>".

Endpoints (as SNS has them, plus those for the test):
    GET  /SimpleNotificationService-test.pem    the signing certificate
    GET  /SimpleNotificationService-flaky.pem   503 the first time, then the
                                                signing certificate
    GET  /?Action=ConfirmSubscription&…&Token=T records T as confirmed
    GET  /confirmed                             the confirmed tokens (JSON)
    POST /sign  {"version": "1"|"2", "text": S} the base64 SHA1withRSA (1) or
                                                SHA256withRSA (2) signature of S
"""

import base64
import datetime
import http.server
import json
import os
import ssl
import sys
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

HOST = "sns.us-east-1.amazonaws.com"


def make(directory):
    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def cert(subject, issuer, public_key, signer, ca, san=None):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]),
                                            critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, tls_key, signing_key = key(), key(), key()
    ca = cert("test CA", "test CA", ca_key.public_key(), ca_key, True)
    tls = cert(HOST, "test CA", tls_key.public_key(), ca_key, False, san=HOST)
    signing = cert(HOST, "test CA", signing_key.public_key(), ca_key, False)

    def write(name, data):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    write("ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    write("tls.pem", tls.public_bytes(serialization.Encoding.PEM))
    write("tls.key", pem_key(tls_key))
    write("signing.pem", signing.public_bytes(serialization.Encoding.PEM))
    return signing_key


def serve(directory):
    signing_key = make(directory)
    with open(os.path.join(directory, "signing.pem"), "rb") as f:
        signing_pem = f.read()
    confirmed = []
    flaky_asked = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status, body, kind="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path == "/SimpleNotificationService-test.pem":
                self.answer(200, signing_pem, "application/x-pem-file")
            elif url.path == "/SimpleNotificationService-flaky.pem":
                flaky_asked.append(True)
                if len(flaky_asked) == 1:
                    self.answer(503, b"<Error>Service Unavailable</Error>", "text/xml")
                else:
                    self.answer(200, signing_pem, "application/x-pem-file")
            elif query.get("Action") == ["ConfirmSubscription"]:
                confirmed.append(query.get("Token", [""])[0])
                self.answer(200, b"<ConfirmSubscriptionResponse/>", "text/xml")
            elif url.path == "/confirmed":
                self.answer(200, json.dumps(confirmed).encode())
            else:
                self.answer(404, b"{}")

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length))
            digest = hashes.SHA1() if request["version"] == "1" else hashes.SHA256()
            signature = signing_key.sign(request["text"].encode(), padding.PKCS1v15(), digest)
            self.answer(200, json.dumps({"signature": base64.b64encode(signature).decode()}).encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(directory, "tls.pem"), os.path.join(directory, "tls.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])
