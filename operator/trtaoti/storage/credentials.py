"""Store configuration from environment variables (a Secret's keys, or the process env).

obstore reads the process environment by itself; this module exists because the
operator opens stores with a *Secret's* data, which is not in its environment. Only
the variables below are forwarded, each to obstore's documented config key, so an
unrelated key in a Secret is ignored rather than rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

S3_VARIABLES = {
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
    "AWS_REGION": "region",
    "AWS_DEFAULT_REGION": "default_region",
    "AWS_ENDPOINT_URL": "endpoint",
    "AWS_ENDPOINT": "endpoint",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "virtual_hosted_style_request",
    "AWS_SKIP_SIGNATURE": "skip_signature",
    "AWS_ROLE_ARN": "role_arn",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "web_identity_token_file",
}
GCS_VARIABLES = {
    "GOOGLE_APPLICATION_CREDENTIALS": "application_credentials",
    "GOOGLE_SERVICE_ACCOUNT": "service_account",
    "GOOGLE_SERVICE_ACCOUNT_PATH": "service_account",
    "GOOGLE_SERVICE_ACCOUNT_KEY": "service_account_key",
    "GOOGLE_BASE_URL": "base_url",
}
AZURE_VARIABLES = {
    "AZURE_STORAGE_ACCOUNT_NAME": "account_name",
    "AZURE_STORAGE_ACCOUNT_KEY": "account_key",
    "AZURE_STORAGE_ACCESS_KEY": "account_key",
    "AZURE_STORAGE_SAS_KEY": "sas_key",
    "AZURE_STORAGE_SAS_TOKEN": "sas_key",
    "AZURE_STORAGE_TOKEN": "token",
    "AZURE_STORAGE_CLIENT_ID": "client_id",
    "AZURE_CLIENT_ID": "client_id",
    "AZURE_STORAGE_CLIENT_SECRET": "client_secret",
    "AZURE_CLIENT_SECRET": "client_secret",
    "AZURE_STORAGE_TENANT_ID": "tenant_id",
    "AZURE_TENANT_ID": "tenant_id",
    "AZURE_FEDERATED_TOKEN_FILE": "federated_token_file",
    "AZURE_STORAGE_ENDPOINT": "endpoint",
    "AZURE_STORAGE_USE_EMULATOR": "use_emulator",
}
VARIABLES = {"s3": S3_VARIABLES, "gs": GCS_VARIABLES, "az": AZURE_VARIABLES}
ENDPOINT_VARIABLES = {
    "s3": ("AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
    "gs": ("GOOGLE_BASE_URL",),
    "az": ("AZURE_STORAGE_ENDPOINT",),
}

# obstore's default overall request timeout (30 s) would cut a multi-GB download
# short. Bound each read instead, so a stalled connection still fails (and is
# retried by obstore's RetryConfig) while a long healthy transfer is not.
CLIENT_OPTIONS: dict[str, Any] = {
    "connect_timeout": timedelta(seconds=10),
    "read_timeout": timedelta(seconds=60),
    "timeout": timedelta(hours=2),
}
RETRY_CONFIG: dict[str, Any] = {
    "max_retries": 8,
    "retry_timeout": timedelta(minutes=3),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=15), "base": 2},
}


def store_config(scheme: str, env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """(obstore config, client options) for a scheme, from environment variables."""
    config: dict[str, str] = {}
    for variable, key in VARIABLES.get(scheme, {}).items():
        value = env.get(variable)
        if value and key not in config:
            config[key] = value
    client = dict(CLIENT_OPTIONS)
    endpoint = next((env[v] for v in ENDPOINT_VARIABLES.get(scheme, ()) if env.get(v)), None)
    # In-cluster MinIO / Ceph RGW endpoints are often plain http; obstore refuses
    # http unless told, so an explicit http:// endpoint is the user's consent.
    if (endpoint and endpoint.startswith("http://")) or env.get("AWS_ALLOW_HTTP", "").lower() == "true":
        client["allow_http"] = True
    if scheme == "s3" and "region" not in config and "default_region" not in config and endpoint:
        # S3-compatible stores ignore the region but SigV4 needs one.
        config["region"] = "us-east-1"
    return config, client
