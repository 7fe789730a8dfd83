"""SES v2 emulator for the tests: moto on 127.0.0.1, an ephemeral port, with
SigV4 checking on.

Prepares, before turning signature checks on: an IAM user allowed to send
(ses:SendEmail), its access key, and a verified sending domain (argv[1],
default acme.example); and a user whose policy does not let it send (its
key under "denied"). Then prints one JSON line
{"endpoint": ..., "access_key": ..., "secret_key": ...} and serves until its
standard input closes (the test process ended).
"""

import json
import sys
import boto3
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

REGION = "eu-west-1"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ses:SendEmail", "Resource": "*"}],
}


# Allowed to read, not to send: SES answers its SendEmail AccessDenied.
READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ses:GetAccount", "Resource": "*"}],
}


TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Federated": "mailbridge-test"},
                   "Action": "sts:AssumeRoleWithWebIdentity"}],
}


def client(service, endpoint):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )


def prepare(endpoint, domain):
    iam = client("iam", endpoint)
    iam.create_user(UserName="mailbridge")
    iam.put_user_policy(
        UserName="mailbridge", PolicyName="send", PolicyDocument=json.dumps(POLICY)
    )
    key = iam.create_access_key(UserName="mailbridge")["AccessKey"]
    iam.create_user(UserName="mailbridge-reader")
    iam.put_user_policy(
        UserName="mailbridge-reader", PolicyName="read", PolicyDocument=json.dumps(READ_ONLY)
    )
    denied = iam.create_access_key(UserName="mailbridge-reader")["AccessKey"]
    key["Denied"] = {
        "access_key": denied["AccessKeyId"],
        "secret_key": denied["SecretAccessKey"],
    }
    client("sesv2", endpoint).create_email_identity(EmailIdentity=domain)
    # A role allowed to send, for temporary credentials (workload identity tests).
    role = iam.create_role(
        RoleName="mailbridge-sender",
        AssumeRolePolicyDocument=json.dumps(TRUST),
    )["Role"]
    iam.put_role_policy(
        RoleName="mailbridge-sender", PolicyName="send", PolicyDocument=json.dumps(POLICY)
    )
    # Its temporary credentials, as a pod on EKS gets them (web identity).
    assumed = client("sts", endpoint).assume_role_with_web_identity(
        RoleArn=role["Arn"], RoleSessionName="mailbridge", WebIdentityToken="web-identity-token"
    )["Credentials"]
    key["RoleArn"] = role["Arn"]
    key["Temporary"] = {
        "access_key": assumed["AccessKeyId"],
        "secret_key": assumed["SecretAccessKey"],
        "session_token": assumed["SessionToken"],
    }
    # From now on every request must carry a valid signature of a known key
    # (what moto's /moto-api/reset-auth does, set here in-process).
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    return key


# AWS serves AssumeRoleWithWebIdentity unsigned (the web identity token is
# the proof); moto's signature checks would refuse it once turned on.
_checked = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _unless_web_identity(self, iam_request_cls, resource="*"):
    if self._get_action() == "AssumeRoleWithWebIdentity":
        return None
    return _checked(self, iam_request_cls, resource)


ActionAuthenticatorMixin._authenticate_and_authorize_action = _unless_web_identity


def main():
    domain = sys.argv[1] if len(sys.argv) > 1 else "acme.example"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    key = prepare(endpoint, domain)
    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "region": REGION,
                "access_key": key["AccessKeyId"],
                "secret_key": key["SecretAccessKey"],
                "temporary": key["Temporary"],
                "role_arn": key["RoleArn"],
                "denied": key["Denied"],
            }
        ),
        flush=True,
    )
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
