"""Reading the small files rotator is pointed at: secrets, keys, CA bundles, config.

Each read is bounded, so a wrong path (``/dev/zero``, a log file) fails fast
with a message instead of filling memory, and every way it can fail becomes
one line naming the setting.
"""

from __future__ import annotations

from pathlib import Path

from rotator.errors import ConfigError

#: Largest secret, key or CA file read.
MAX_FILE = 256 * 1024


def read_limited(
    path: Path,
    setting: str,
    what: str,
    limit: int = MAX_FILE,
    *,
    error: type[ConfigError] = ConfigError,
    fix: str = "",
) -> bytes:
    """At most ``limit`` bytes of ``path``, else ``error`` naming ``setting``, ``what``, ``fix``."""
    tail = f"; {fix}" if fix else ""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{setting}: {path} does not exist{tail}") from None
    except IsADirectoryError:
        raise error(f"{setting}: {path} is a directory, not {what}{tail}") from None
    except PermissionError:
        raise error(
            f"{setting}: {path} cannot be read (permission denied); "
            "make it readable by the user rotator runs as"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise error(f"{setting}: {path} cannot be read ({reason}){tail}") from None
    if len(data) > limit:
        raise error(
            f"{setting}: {path} is larger than {limit // 1024} KiB, too big for {what}; "
            f"check the path{tail}"
        )
    return data
