"""How every command says that its input is wrong: one line on stderr, ``error: ...``, and exit status 2 (before any work).

``nasplay SUBCOMMAND`` (:mod:`nasplay.cli`) returns the status; ``python -m nasplay`` (:mod:`nasplay.__main__`) exits with it.
"""

from __future__ import annotations

import sys

BAD_INPUT = 2  # the exit status of a command whose input the checks refused


def bad_input(message: str) -> int:
    """Print ``error: MESSAGE`` on stderr; returns :data:`BAD_INPUT`, the exit status to end with."""
    print(f"error: {message}", file=sys.stderr)
    return BAD_INPUT
