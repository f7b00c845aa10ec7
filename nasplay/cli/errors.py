"""How every command says that its input is wrong: one line on stderr, ``error: ...``, and exit status 2 (before any work).

``nasplay SUBCOMMAND`` (:mod:`nasplay.cli`) returns the status; ``python -m nasplay`` (:mod:`nasplay.__main__`) exits with it.
"""

from __future__ import annotations

import sys

BAD_INPUT = 2  # the exit status of a command whose input the checks refused
# The subcommands of ``nasplay`` (nasplay.cli builds them; a test keeps the two the same), named here so that
# ``python -m nasplay COMMAND`` can point at ``nasplay COMMAND`` without loading the commands.
COMMANDS = ("describe", "diff", "draw", "export", "knobs", "list", "replay", "report")


def bad_input(message: str) -> int:
    """Print ``error: MESSAGE`` on stderr; returns :data:`BAD_INPUT`, the exit status to end with."""
    print(f"error: {message}", file=sys.stderr)
    return BAD_INPUT
