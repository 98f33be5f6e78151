"""The system programs the harnesses run (nginx, wrk), checked before anything starts.

`make stack`, `make bench`, `make loadtest`, `make soak`, `make chaos` and `make bench-live` start
nginx, and `make bench` wrk too. On a machine without them a run failed minutes in, after
migrations and collectstatic, with `nginx: command not found` in a log. Each now stops at once
with one line saying what to install (Debian's package names).

    python -m loadtest.programs nginx      # scripts/stack: exits 1 with that line if one is missing
"""

import os
import shutil
import sys

# Debian package of each program.
DEBIAN_PACKAGES = {"nginx": "nginx", "wrk": "wrk", "chromium": "chromium", "redis-server": "redis-server"}
# Debian installs daemons here, which is not on every user's PATH.
SBIN_DIRECTORIES = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def missing_program(program: str) -> str | None:
    """None when `program` is on PATH, else the line that says how to get it there."""
    if shutil.which(program):
        return None
    for directory in SBIN_DIRECTORIES:
        if os.access(os.path.join(directory, program), os.X_OK):
            return f"{program} is in {directory}, which is not on PATH: add it (export PATH=$PATH:{directory})"
    return f"{program} is missing: apt-get install {DEBIAN_PACKAGES.get(program, program)}"


def programs_require(*programs: str) -> None:
    """Exits with one line per missing program (usually just one line), before anything has started."""
    problems = [problem for program in programs if (problem := missing_program(program))]
    if problems:
        raise SystemExit("\n".join(problems))


if __name__ == "__main__":
    programs_require(*sys.argv[1:])
