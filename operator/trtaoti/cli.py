"""`trtaoti` command line: one subcommand per module, imported only when used.

Lazy imports keep the light commands light: `trtaoti fetch` in a serving pod's init
container must not pay for importing torch, and the operator image has no torch.
Each command module exposes `configure(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

COMMANDS: dict[str, tuple[str, str]] = {
    "crds": ("trtaoti.api.command", "print the TrtAotiModel CustomResourceDefinition"),
    "operator": ("trtaoti.operator.command", "run the Kopf operator"),
    "compile": ("trtaoti.compiler.command", "compile one batch profile into a validated .pt2 and store it"),
    "fetch": ("trtaoti.storage.command", "download an artifact, verify its sha256, move it into place"),
    "run": ("trtaoti.local.command", "compile and serve a TrtAotiModel on this machine, no cluster"),
}


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    parser = argparse.ArgumentParser(prog="trtaoti", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in COMMANDS), None)
    module = None
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.configure(sub)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    if module is None:  # parse_args() exits first: the command is required
        parser.error("no command given")
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
