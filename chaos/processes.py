"""The Procfile's processes, each started on its own, so one can be killed (-9) and started again alike.

honcho stops every process when one dies, which is the opposite of what a fault test needs.
"""

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

VARIABLE = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)\}?")


def procfile_commands(procfile: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """name -> argv, with $VARS expanded from `env` (as the shell under honcho would)."""
    commands = {}
    for line in procfile.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, command = line.split(":", 1)
        expanded = VARIABLE.sub(lambda match: env[match.group(1)], command.strip())
        commands[name.strip()] = shlex.split(expanded)
    return commands


class Process:
    def __init__(self, name: str, argv: list[str], *, cwd: Path, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.cwd, self.env = name, argv, cwd, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.popen = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to its group: a crashed machine or container takes a gunicorn's workers with it."""
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if not self.running:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
