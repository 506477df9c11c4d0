"""The worker's secrets, which http nodes name in their templates as ``{{ $secrets.NAME }}`` and custom node types
read with ``spane_core.sdk.secret("NAME")``.

A secret is ``SPANE_SECRET_<NAME>`` in the worker's environment or else the file ``<NAME>`` in ``SPANE_SECRETS_DIR``
(one trailing newline dropped), read each time a node uses it, so a rotated secret is taken up without a restart. An
empty one fails the node as a missing one does.
Only workers hold secrets: a definition names them, and the API, the log and the read models never see a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from spane_core.errors import NonRetryableError

ENV_PREFIX = "SPANE_SECRET_"
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MissingSecret(NonRetryableError):
    """A node names a secret that this worker does not have."""


class Secrets:
    def __init__(self, directory: str = "", environ: Mapping[str, str] | None = None) -> None:
        self.directory = Path(directory) if directory else None
        self.environ = os.environ if environ is None else environ

    def get(self, name: str) -> str:
        """The value of the secret ``name``, a plain identifier (a template's is checked when it is parsed)."""
        if not SECRET_NAME.fullmatch(name):  # never a path: a name is looked up in the directory, not beyond it
            raise MissingSecret(f"{name!r} is not a secret's name (letters, digits and '_', not first a digit)")
        where = f"{ENV_PREFIX}{name}" + (f" or a file {name} in {self.directory}" if self.directory else "")
        value = self.environ.get(ENV_PREFIX + name)
        if not value and self.directory is not None:
            try:
                text = (self.directory / name).read_text(encoding="utf-8")
            except (FileNotFoundError, IsADirectoryError):
                pass
            except UnicodeDecodeError:
                raise MissingSecret(f"the file {name} in {self.directory} is not UTF-8 text") from None
            else:
                value = text.removesuffix("\n").removesuffix("\r")
        if value is None:
            raise MissingSecret(f"the secret {name} is not set on this worker (set {where})")
        if not value:  # an empty file or variable is a mistake: sent, it would authenticate nothing
            raise MissingSecret(f"the secret {name} is empty on this worker ({where})")
        return value
