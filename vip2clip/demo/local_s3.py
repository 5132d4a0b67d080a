"""An embedded S3 endpoint (moto) on 127.0.0.1 for the offline demo."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import boto3

# The demo's endpoint accepts any credentials; these placeholders only let clients sign.
DEMO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "vip2clip-demo",
    "AWS_SECRET_ACCESS_KEY": "vip2clip-demo",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class LocalS3:
    """A running embedded endpoint and the environment that points AWS clients at it."""

    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        return {**DEMO_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def create_bucket(self, name: str) -> None:
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=DEMO_CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=DEMO_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DEMO_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=name)


@contextlib.contextmanager
def local_s3(host: str = "127.0.0.1") -> Iterator[LocalS3]:
    """Run moto's S3 server in this process for the duration of the block."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    with socket.socket() as sock:
        sock.bind((host, 0))
        port = int(sock.getsockname()[1])
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        yield LocalS3(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()
