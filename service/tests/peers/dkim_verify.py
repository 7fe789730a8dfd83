"""Verifies the DKIM signature of a received message with dkimpy, an
independent implementation, answering its DNS query from the signer's key.

    dkim_verify.py --eml FILE --key PEM [--tamper]

Prints one JSON line: {"valid": bool, "tags": {...}} (the signature's tags).
--tamper changes one body character first (the signature must then fail).
"""
import argparse
import base64
import json

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def dns_record(pem):
    key = serialization.load_pem_private_key(pem, password=None)
    public = key.public_key()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--eml", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--tamper", action="store_true")
    args = p.parse_args()
    with open(args.eml, "rb") as f:
        message = f.read()
    with open(args.key, "rb") as f:
        record = dns_record(f.read())
    if args.tamper:
        head, body = message.split(b"\r\n\r\n", 1)
        message = head + b"\r\n\r\n" + body.replace(b"e", b"a", 1)
    valid = dkim.verify(message, dnsfunc=lambda name, timeout=5: record)
    signature = dkim.DKIM(message)
    header = [v for (k, v) in signature.headers if k.lower() == b"dkim-signature"]
    tags = {}
    if header:
        for part in header[0].decode().replace("\r\n", "").split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                tags[k.strip()] = "".join(v.split())
    print(json.dumps({"valid": bool(valid), "tags": tags}))


if __name__ == "__main__":
    main()
