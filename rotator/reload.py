"""Settings loaded again when a file they came from changes (``rotator start``).

A Kubernetes Secret update, a rotated M2M secret, an edited configuration: the
service should not need a restart to see them. :class:`Reloader` remembers
every file the settings were read from (the configuration, secret files, key
files, CA bundles) with a digest of its bytes, and loads the settings again
when one of them changes, or when asked to (SIGHUP). A load that fails raises
the loader's :class:`~rotator.errors.ConfigError`; the caller keeps the last
good settings. While the last load failed, every poll tries again, so a fix
(or a file that was missing and now exists) is seen at the next check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rotator import files
from rotator.settings import Settings

#: The largest file read again to see whether it changed (a CA bundle may be big).
MAX_WATCHED = 16 * files.MAX_FILE


class Reloader:
    """Loads settings, and loads them again when a file they came from changes."""

    def __init__(self, load: Callable[[], Settings]) -> None:
        self._load = load
        #: Each file the good settings came from, with the digest of what was read.
        self.files: tuple[tuple[Path, str], ...] = ()
        #: Whether the last load failed (then every poll tries again).
        self.refused = False

    def load(self) -> Settings:
        """Load the settings, remembering the files they came from; ConfigError if invalid."""
        with files.recording() as seen:
            try:
                settings = self._load()
            except BaseException:
                self.refused = True
                raise
        self.files, self.refused = tuple(seen), False
        return settings

    def changed(self) -> list[Path]:
        """The files whose bytes differ from those the settings came from (or are gone)."""
        out = []
        for path, digest in self.files:
            try:
                data = files.read_bounded(path, MAX_WATCHED)
            except files.Unreadable:
                out.append(path)
                continue
            if files.digest(data) != digest:
                out.append(path)
        return out

    def poll(self, force: bool = False) -> tuple[Settings, list[Path]] | None:
        """New settings and the files that changed; None when nothing changed.

        ``force`` (SIGHUP) loads again whatever the files say. Raises ConfigError
        when the settings no longer validate.
        """
        changed = [] if force else self.changed()
        if not (force or changed or self.refused):
            return None
        return self.load(), changed
