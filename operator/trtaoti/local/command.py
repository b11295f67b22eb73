"""`trtaoti run MODEL.yaml`: compile every batch profile and serve it here.

    trtaoti run examples/mlp/trtaotimodel.yaml            # compile, serve, wait for Ctrl-C
    trtaoti run examples/mlp/trtaotimodel.yaml --once     # ... send one inference and exit

Exit status: 0 served and stopped cleanly (or --once answered), 1 compile or server
failure, 2 bad input (spec, flags), 130 interrupted while compiling.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from trtaoti.storage.uri import StorageUri

if TYPE_CHECKING:
    from trtaoti.api.models import TrtAotiModel

DEFAULT_STORE = "file://~/.cache/trtaoti/store"
DEFAULT_RUN_DIR = "~/.cache/trtaoti/run"
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, metavar="MODEL.yaml", help="TrtAotiModel manifest")
    parser.add_argument(
        "--profile",
        action="append",
        dest="profiles",
        metavar="NAME",
        help="compile and serve only this batch profile (repeatable; default: all)",
    )
    parser.add_argument(
        "--backend",
        choices=["tensorrt", "inductor"],
        help="force a backend (default: tensorrt where torch_tensorrt imports on a GPU, else inductor)",
    )
    parser.add_argument("--device", choices=["cuda", "cpu"], help="force a device (default: cuda when visible)")
    store = parser.add_mutually_exclusive_group()
    store.add_argument(
        "--store", default=DEFAULT_STORE, help=f"artifact store URI; a local directory by default ({DEFAULT_STORE})"
    )
    store.add_argument(
        "--use-spec-storage",
        action="store_true",
        help="store in spec.storage.uri instead (credentials from the environment)",
    )
    parser.add_argument(
        "--server-binary", help="trtaoti-server to run (default: $TRTAOTI_SERVER, PATH, or the source checkout's build)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the servers listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="first port; each profile takes the next free one")
    parser.add_argument("--ready-timeout", type=float, default=300, help="seconds a server may take to turn ready")
    parser.add_argument(
        "--run-dir", default=DEFAULT_RUN_DIR, help=f"server logs and downloaded packages (default {DEFAULT_RUN_DIR})"
    )
    parser.add_argument(
        "--once",
        "--infer-example",
        action="store_true",
        dest="once",
        help="send one inference with random inputs to each profile, print it, stop, exit",
    )


def run(args: argparse.Namespace) -> int:
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    errors = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    try:
        return _run(args, console)
    except KeyboardInterrupt:
        errors.print("interrupted")
        return EXIT_INTERRUPTED
    except _Refused as exc:
        errors.print(f"[bold red]trtaoti run:[/] {exc}", markup=True)
        return exc.code


class _Refused(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _run(args: argparse.Namespace, console: Console) -> int:
    # torch and the compiler load here, after argparse answered --help quickly.
    from trtaoti.compiler.command import load_spec
    from trtaoti.compiler.errors import CompileError, InvalidInput
    from trtaoti.local.backend import choose_backend, for_this_machine
    from trtaoti.local.compile import compile_all
    from trtaoti.local.serve import ServerError, find_server_binary

    try:
        model = load_spec(args.spec)
        profiles = _profiles(model, args.profiles)
        store_uri = model.spec.storage.uri if args.use_spec_storage else expand_store_uri(args.store)
        binary = find_server_binary(args.server_binary)
        choice = choose_backend(args.backend, args.device)
    except (InvalidInput, ValueError, ServerError) as exc:
        raise _Refused(str(exc), EXIT_INVALID) from None

    console.print(f"[bold]{model.name}[/]: {choice.describe()}")
    model, note = for_this_machine(model, choice)
    if note:
        console.print(note)
    console.print(f"store: {store_uri}    server: {binary}")
    try:
        compiled = compile_all(model, profiles, store_uri, choice, args.spec.resolve().parent, console)
    except CompileError as exc:
        raise _Refused(f"compile failed: {exc}", exc.exit_code) from None

    from trtaoti.local.session import ServingSession
    from trtaoti.storage import StorageError

    session = ServingSession(model, compiled, binary, args, console)
    try:
        session.start()
        return session.infer_once_and_stop() if args.once else session.serve_until_signalled()
    except (ServerError, StorageError, OSError) as exc:
        raise _Refused(str(exc), EXIT_FAILED) from None
    finally:
        # Whatever ended the run (an error, Ctrl-C while starting), no server outlives it;
        # a no-op for servers already stopped.
        session.stop()


def _profiles(model: TrtAotiModel, wanted: list[str] | None) -> list[str]:
    names = [p.name for p in model.spec.batch_profiles]
    for name in wanted or []:
        if name not in names:
            raise ValueError(f"--profile {name}: {model.name} has no such batch profile (have: {', '.join(names)})")
    return list(dict.fromkeys(wanted)) if wanted else names


def expand_store_uri(uri: str) -> str:
    """`file://~/x` and `file://relative` are conveniences of this command; the stores
    (and the cluster) only know absolute `file:///...`."""
    if uri.startswith("file://") and not uri.startswith("file:///"):
        uri = "file://" + str(Path(uri[len("file://") :]).expanduser().resolve())
    StorageUri.parse(uri)  # ValueError names the problem
    return uri
