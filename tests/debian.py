"""Real peers from Debian's packages (chromium, prometheus, swaks…) for the tests that need them.

The test setup installs them, not the product: a fresh CI machine has only Python and pip, and
the project's own runtime never shells out to these tools. Installs are serialised with a lock
file so that xdist workers or parallel sessions do not race on dpkg.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

_LOCK = Path("/tmp/payam-apt.lock")
_updated = False


def ensure_debian_package(binary: str, package: str | None = None) -> str:
    """Path of ``binary``; installs Debian ``package`` (default: the binary's name) if missing.

    Raises (so the test fails, never skips) when it cannot be installed.
    """
    global _updated
    found = shutil.which(binary)
    if found:
        return found
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = shutil.which(binary)
        if found:
            return found
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if not _updated:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            _updated = True
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package or binary],
            check=True,
            env=env,
        )
    found = shutil.which(binary)
    if not found:
        raise RuntimeError(f"{package or binary} installed but {binary} is not on PATH")
    return found
