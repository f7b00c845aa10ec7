"""Where nasplay's own files outside the Python package live: ``conf/`` (Hydra) and ``search_spaces/``.

They sit at the top of the source tree (DESIGN.md's layout). A source checkout or an editable install
uses them there; a wheel carries a copy under ``<prefix>/share/nasplay/`` (``data-files`` in
pyproject.toml). ``NASPLAY_CONF_DIR`` / ``NASPLAY_SPACES_DIR`` point elsewhere.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def project_dir(name: str, env: str) -> Path:
    """``name`` (``conf`` or ``search_spaces``): ``$env`` if set, else the source tree's, else the installed copy."""
    if os.environ.get(env):
        return Path(os.environ[env])
    candidates = [SOURCE_ROOT / name, Path(sysconfig.get_path("data")) / "share" / "nasplay" / name,
                  Path(sys.prefix) / "share" / "nasplay" / name]
    return next((p for p in candidates if p.is_dir()), candidates[0])
