"""A local MinIO server with one bucket: the S3 endpoint tests and the dev cluster use."""

from __future__ import annotations

import secrets
from pathlib import Path

import requests
import urllib3
from minio import Minio

from .ports import HOST
from .processes import ProcessSet
from .waiting import wait_for

REGION = "us-east-1"
BUCKET = "trtaoti-test"


def s3_env(port: int, access_key: str, secret_key: str, bucket: str = BUCKET, host: str = HOST) -> dict[str, str]:
    """The variables S3 clients (obstore, boto, the AWS CLI) read, plus the test bucket."""
    return {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_REGION": REGION,
        "AWS_ALLOW_HTTP": "true",
        "TRTAOTI_TEST_BUCKET": bucket,
    }


def start_minio(
    procs: ProcessSet, bin_dir: Path, data_dir: Path, port: int, console_port: int, host: str = HOST
) -> dict[str, str]:
    """Starts MinIO on `host` (loopback, or the real node's bridge address for pods) with
    fresh random credentials, creates the bucket, returns s3_env."""
    access_key = "trtaoti-" + secrets.token_hex(4)
    secret_key = secrets.token_urlsafe(24)
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = procs.start(
        "minio",
        [
            str(bin_dir / "minio"),
            "server",
            str(data_dir),
            "--quiet",
            "--address",
            f"{host}:{port}",
            "--console-address",
            f"{host}:{console_port}",
        ],
        env={
            "MINIO_ROOT_USER": access_key,
            "MINIO_ROOT_PASSWORD": secret_key,
            "MINIO_REGION": REGION,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        },
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"minio exited with {proc.returncode}; see {procs.log_path('minio')}")
        return requests.get(f"http://{host}:{port}/minio/health/ready", timeout=1).ok

    wait_for(ready, timeout=60, what="MinIO to be ready", ignore=(requests.RequestException,))
    client = Minio(f"{host}:{port}", access_key=access_key, secret_key=secret_key, secure=False, region=REGION)
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)
    return s3_env(port, access_key, secret_key, host=host)


def minio_answers(env: dict[str, str]) -> bool:
    """True when the endpoint in `env` is a live MinIO holding the test bucket."""
    endpoint = env.get("AWS_ENDPOINT_URL", "")
    host = endpoint.removeprefix("http://")
    try:
        client = Minio(
            host,
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            secure=False,
            region=env.get("AWS_REGION", REGION),
            http_client=urllib3.PoolManager(timeout=2.0, retries=False),
        )
        return client.bucket_exists(env["TRTAOTI_TEST_BUCKET"])
    except Exception:  # noqa: BLE001 - any failure means "not usable", the caller starts its own
        return False
