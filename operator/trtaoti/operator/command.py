"""`trtaoti operator`: run the Kopf operator (the operator image's entry point)."""

from __future__ import annotations

import argparse
import logging
import os

from trtaoti.resources.config import DEFAULT_COMPILER_IMAGE, DEFAULT_FETCH_IMAGE, DEFAULT_SERVER_IMAGE, ChildSettings


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        dest="namespaces",
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument(
        "--compiler-image",
        default=_env("TRTAOTI_COMPILER_IMAGE", DEFAULT_COMPILER_IMAGE),
        help="image of compile Jobs when spec.compile.image is unset [$TRTAOTI_COMPILER_IMAGE]",
    )
    parser.add_argument(
        "--server-image",
        default=_env("TRTAOTI_SERVER_IMAGE", DEFAULT_SERVER_IMAGE),
        help="trtaoti-server image when spec.serving.image is unset [$TRTAOTI_SERVER_IMAGE]",
    )
    parser.add_argument(
        "--fetch-image",
        default=_env("TRTAOTI_FETCH_IMAGE", DEFAULT_FETCH_IMAGE),
        help="image of the serving pods' `trtaoti fetch` init container [$TRTAOTI_FETCH_IMAGE]",
    )
    parser.add_argument(
        "--image-pull-policy",
        default=_env("TRTAOTI_IMAGE_PULL_POLICY", "IfNotPresent"),
        choices=["Always", "IfNotPresent", "Never"],
    )
    parser.add_argument(
        "--allowed-image-prefix",
        action="append",
        dest="allowed_image_prefixes",
        default=[p for p in _env("TRTAOTI_ALLOWED_IMAGE_PREFIXES", "").split(",") if p],
        help="spec.compile.image and spec.serving.image must start with one of these (repeatable; "
        "default: any image) [$TRTAOTI_ALLOWED_IMAGE_PREFIXES, comma-separated]",
    )
    parser.add_argument("--resync-seconds", type=float, default=300.0, help="re-reconcile every model this often")
    parser.add_argument("--concurrency", type=int, default=32, help="models reconciled at once")
    parser.add_argument(
        "--liveness",
        default=None,
        metavar="URL",
        help="serve Kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    import kopf

    from trtaoti.operator import handlers  # noqa: F401 - importing it registers the Kopf handlers
    from trtaoti.operator.config import OperatorConfig

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Kopf logs every event handler call at INFO: one line per watch event.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.kubeconfig:
        # Kopf's own login reads $KUBECONFIG; the reconciler's client gets it explicitly.
        os.environ["KUBECONFIG"] = args.kubeconfig
    config = OperatorConfig(
        children=ChildSettings(
            compiler_image=args.compiler_image,
            server_image=args.server_image,
            fetch_image=args.fetch_image,
            image_pull_policy=args.image_pull_policy,
            allowed_image_prefixes=tuple(args.allowed_image_prefixes),
        ),
        namespaces=tuple(args.namespaces),
        kubeconfig=args.kubeconfig,
        resync_seconds=args.resync_seconds,
        concurrency=args.concurrency,
    )
    kopf.run(
        standalone=True,  # one replica (Deployment strategy Recreate); no peering objects or RBAC
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        memo=kopf.Memo(config=config),
        liveness_endpoint=args.liveness,
    )
    return 0
