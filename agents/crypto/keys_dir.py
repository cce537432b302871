"""The keys directory (`keys_dir`): made private and the agent's own at start, and the field keys of an
older agent moved into it from the data directory.

Before `keys_dir`, the field keys, `active` and the spool key pair lived in `<data_dir>/keys/`, so any
backup of the data directory decrypted everything in it. At every start, before any worker runs, the
supervisor moves what it finds there into `keys_dir` (`migrate_legacy_keys`): each file is copied
durably under its own name, then removed from the old place, so a crash at any point leaves every key
in one place or both, and the next start finishes the move. The CURVE keys (`keys/curve/`, the default
`intake.curve_dir`) are not field keys and stay where they are.

When `keys_dir` already holds a keyring (an agent of this version started there before), a field key
found in the old place is still copied, so that the envelopes it sealed keep opening; the old `active`
is dropped (the keyring in `keys_dir` decides which key encrypts), and an old spool key pair that differs
from the one in `keys_dir` is left where it is, with a warning: spool files sealed to it cannot be
opened with the new one.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from auditship.agents.crypto.key_files import publish
from auditship.agents.durable import fsync_directory
from auditship.agents.errors import ConfigError
from auditship.ondisk.data_layout import DataLayout
from auditship.ondisk.errors import KeyringError
from auditship.ondisk.files import make_private_dirs
from auditship.ondisk.keys import ACTIVE, KEY_ID, SPOOL_KEY

logger = logging.getLogger("auditship.crypto")


def prepare_keys_dir(keys_dir: Path) -> None:
    """Create `keys_dir` (0700) or check that the existing one is a directory of the agent's own user;
    ConfigError otherwise, naming it."""
    try:
        make_private_dirs(keys_dir, tighten=False)
        status = keys_dir.lstat()
    except OSError as exc:
        raise ConfigError(
            f"keys_dir: cannot create {keys_dir}: {exc.strerror} (make it, 0700 and owned by the agent's "
            "user, or name another with keys_dir)"
        ) from exc
    if not stat.S_ISDIR(status.st_mode):
        raise ConfigError(f"keys_dir: {keys_dir} is not a directory (a link or a file is where it goes)")
    if status.st_uid != os.geteuid():
        raise ConfigError(
            f"keys_dir: {keys_dir} is owned by uid {status.st_uid}, not by the agent's user (uid "
            f"{os.geteuid()}); whoever owns it could read the keys and forge digests"
        )
    if stat.S_IMODE(status.st_mode) != 0o700:
        keys_dir.chmod(0o700)


def migrate_legacy_keys(legacy: Path, keys_dir: Path) -> list[str]:
    """Move the field keys, `active` and the spool key from `legacy` (`<data_dir>/keys`) into `keys_dir`;
    returns the names moved. Field keys first and `active` last, so that `keys_dir` never names an active
    key it does not hold."""
    if not legacy.is_dir():
        return []
    names = sorted(p.name for p in legacy.glob("f-*.key") if KEY_ID.fullmatch(p.stem))
    names += [name for name in (SPOOL_KEY, ACTIVE) if (legacy / name).is_file()]
    if names:
        make_private_dirs(keys_dir)
    moved = [name for name in names if _move(legacy / name, keys_dir / name)]
    if moved:
        fsync_directory(legacy)
        logger.warning(
            "moved %d key files (%s) from %s to keys_dir %s: keys no longer live in the data directory, so "
            "a backup of it decrypts nothing; back up %s apart from the data",
            len(moved),
            ", ".join(moved),
            legacy,
            keys_dir,
            keys_dir,
        )
    return moved


def field_keys_dir(keys_dir: Path, data_dir: Path) -> Path:
    """Where a reader finds the field keys: `keys_dir`, or the data directory's old `keys/` while an agent
    of this version has not started there yet (and moved them)."""
    legacy = DataLayout(data_dir).keys
    if not (keys_dir / ACTIVE).exists() and (legacy / ACTIVE).exists():
        return legacy
    return keys_dir


def _move(source: Path, target: Path) -> bool:
    """Copy `source` to `target` durably and remove `source`; True if it moved. The copy keeps the
    source's mtime: a field key's is its creation time, which rotation by age counts from."""
    try:
        data = source.read_bytes()
        if publish(target, data):
            status = source.stat()
            os.utime(target, ns=(status.st_atime_ns, status.st_mtime_ns))
        if target.read_bytes() == data:
            source.unlink()
            return True
    except OSError as exc:
        raise KeyringError(f"{source}: cannot move it to {target.parent}: {exc.strerror}") from exc
    if source.name == ACTIVE:
        # keys_dir has its own keyring: its `active` decides; the old one names a key copied beside it.
        source.unlink()
        logger.warning("%s: dropped; %s names the active field key", source, target)
    else:
        logger.warning(
            "%s differs from %s and stays where it is: what was sealed to it opens only with it",
            source,
            target,
        )
    return False
