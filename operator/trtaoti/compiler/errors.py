"""Compile failures, split by whether a retry could help.

The exit code tells the operator (and the Job's backoffLimit) what to do:
InvalidInput (2) fails the same way on every GPU, so it is never retried;
CompileFailed (1) may be transient (node, storage, driver).
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_INVALID_INPUT = 2  # must equal trtaoti.resources.compile_job.EXIT_INVALID_INPUT


class CompileError(Exception):
    exit_code = EXIT_FAILED


class CompileFailed(CompileError):
    """Something went wrong that might not happen again (storage, loader crash, timeout)."""


class InvalidInput(CompileError):
    """The spec and the model disagree, or the model cannot be compiled as declared."""

    exit_code = EXIT_INVALID_INPUT


class ValidationFailed(InvalidInput):
    """The package ran but its results differ from the eager model beyond tolerance."""
