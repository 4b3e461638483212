"""Long fuzz runs (issue 9 part 5): the same property tests that ``make test`` runs briefly,
with many more examples. They need the test PostgreSQL (127.0.0.1:5432, as for ``make test``).

    python -m bench.fuzz mime --examples 20000    # SMTP ingestion, malformed MIME
    python -m bench.fuzz pdu --examples 5000      # SMPP PDU decoders
    python -m bench.fuzz api --examples 80        # schemathesis, per operation

Prints the examples run, the wall time and pytest's verdict; exits with pytest's status.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "mime": "tests/test_mime_fuzz.py::test_any_mime_gets_a_proper_reply_and_all_or_nothing",
    "pdu": "tests/test_pdu_fuzz.py",
    "api": "tests/test_api_fuzz.py",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--examples", type=int, default=20_000)
    args = parser.parse_args(argv)
    env = {**os.environ, "PAYAM_FUZZ_EXAMPLES": str(args.examples)}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
        TARGETS[args.target],
    ]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    print(
        f"fuzz {args.target}: {args.examples} examples per test, "
        f"{time.monotonic() - started:.0f} s, pytest exit {done.returncode}"
    )
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
