"""Spool ingestion in a real agent: an entry that is no regular file, cannot be opened, is damaged, is
too large, or meets any other failure is moved to `<spool dir>/quarantine/` (or, when it cannot be
moved or claimed, left) with a log line and counted; names of any length or bytes are claimed under
short clean ones; a record that cannot be decoded is a reject; and the rest of the spool is ingested by
the same intake process."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest

from shipper.event import AuditEvent, AuditEventType
from shipper.records import encode_record
from shipper.spool_writer import PLAIN, SpoolWriter
from shipper.wire import Frame, frame_encoder
from tests.agentproc import QUICK_CONFIG, AgentDirs, RunningAgent, file_events
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

CONFIG = QUICK_CONFIG + "[intake]\nspool_scan_interval_s = 0.1\n[sinks.parquet]\nenabled = false\n"


def spooled(emitter: str, numbers: range) -> tuple[list[bytes], list[str]]:
    """Frames of numbered events as an emitter spools them, and the events' ids."""
    events = [AuditEvent(event_type=AuditEventType.DATA_READ, details={"n": n}) for n in numbers]
    frames = [
        frame_encoder.encode(Frame(emitter, n + 1, 0, event))
        for n, event in zip(numbers, events, strict=True)
    ]
    return frames, [event.event_id for event in events]


def write_spool(spool: Path, emitter: str, frames: list[bytes]) -> Path:
    """The spool file an emitter named `emitter` writes there (its name has a random part)."""
    writer = SpoolWriter(spool, emitter)
    writer.write([(frame, False) for frame in frames])
    return writer.path


def delivered(dirs: AgentDirs) -> set[str]:
    return {str(event["event_id"]) for event in file_events(dirs.data)}


def quarantined(spool: Path) -> list[str]:
    """The quarantined entries' original names (their quarantine names add a number)."""
    folder = spool / "quarantine"
    return sorted(path.name.rsplit(".", 1)[0] for path in folder.iterdir()) if folder.is_dir() else []


def test_entries_that_are_no_regular_file_are_quarantined_and_the_rest_of_the_spool_is_ingested(
    dirs: AgentDirs,
) -> None:
    """A directory named `x.spool`, a FIFO (an open would wait for a writer) and a symbolic link (to a
    spool file elsewhere, which is not followed) are moved to quarantine, each counted and logged; a
    spool file written beside them is ingested, and the intake is the process it was."""
    agent = RunningAgent(dirs, CONFIG).start()
    try:
        spool = dirs.data / "spool"
        intake_pid = agent.worker_pid("intake")
        (spool / "dir.spool").mkdir()
        os.mkfifo(spool / "fifo.spool")
        elsewhere = dirs.root / "elsewhere"
        linked_frames, linked_ids = spooled("linked", range(3))
        linked = write_spool(elsewhere, "linked", linked_frames)
        (spool / "link.spool").symlink_to(linked)
        frames, ids = spooled("good", range(5))
        write_spool(spool, "good", frames)
        wait_for(
            lambda: agent.counters("intake").get("spool_quarantined") == 3, 30, "three quarantined entries"
        )
        wait_for(lambda: delivered(dirs) == set(ids), 30, "the good spool file's events")
        names = quarantined(spool)
        assert len(names) == 3 and all(name.endswith(".claimed") for name in names), names
        assert sorted(name.split(".")[0] for name in names) == ["dir", "fifo", "link"]
        assert linked.is_file()  # the link's target was not touched
        assert sorted(path.name for path in spool.iterdir() if path.name != "seal.pub") == ["quarantine"]
        log = agent.log()
        assert "a directory, not a regular file" in log
        assert "a FIFO, not a regular file" in log
        assert "a symbolic link, which the agent does not follow" in log
        assert agent.worker_pid("intake") == intake_pid
    finally:
        agent.stop()
    assert not set(linked_ids) & delivered(dirs)


def test_a_spool_file_with_a_corrupt_record_is_ingested_up_to_it_and_then_kept_whole_in_quarantine(
    dirs: AgentDirs,
) -> None:
    """The records before the damage are ingested; the file, with the records after it that only a
    person can salvage, is quarantined instead of removed."""
    agent = RunningAgent(dirs, CONFIG).start()
    try:
        spool = dirs.data / "spool"
        frames, ids = spooled("damaged", range(3))
        damaged = bytearray(encode_record(PLAIN + frames[1]))
        damaged[-1] ^= 0xFF  # its checksum no longer matches
        before = encode_record(PLAIN + frames[0])
        (dirs.root / "damaged.spool").write_bytes(before + bytes(damaged) + encode_record(PLAIN + frames[2]))
        shutil.move(dirs.root / "damaged.spool", spool / "damaged.spool")
        wait_for(lambda: agent.counters("intake").get("spool_quarantined") == 1, 30, "the quarantined file")
        wait_for(lambda: delivered(dirs) == {ids[0]}, 30, "the record before the damage")
        (kept,) = (spool / "quarantine").iterdir()
        assert kept.stat().st_size == len(before) + len(damaged) + len(encode_record(PLAIN + frames[2]))
        assert f"corrupt record at byte {len(before)}" in agent.log()
    finally:
        agent.stop()


def test_a_spool_record_that_cannot_be_decoded_is_a_reject_and_the_file_is_finished_and_removed(
    dirs: AgentDirs,
) -> None:
    """A record holding a message nested 1,000 arrays deep between two good ones: the good ones arrive,
    the bad one is a reject naming the file, and the file is removed as usual, not left claimed (the
    intake used to exit on it at every start)."""
    agent = RunningAgent(dirs, CONFIG).start()
    try:
        spool = dirs.data / "spool"
        frames, ids = spooled("nested", range(2))
        write_spool(spool, "nested", [frames[0], b"\x91" * 1000 + b"\xc0", frames[1]])
        wait_for(lambda: delivered(dirs) == set(ids), 30, "the good records' events")
        wait_for(lambda: agent.counters("intake").get("spool_files") == 1, 30, "the file counted as ingested")
        assert sorted(path.name for path in spool.iterdir()) == ["seal.pub"]
        (reject,) = [
            msgspec.json.decode(line)
            for line in next((dirs.data / "rejects").iterdir()).read_bytes().splitlines()
        ]
        assert reject["source"].startswith("spool:nested.")
        assert "invalid frame" in reject["reason"]
        assert agent.counters("intake").get("spool_quarantined") == 0
    finally:
        agent.stop()


def test_a_spool_file_the_agent_may_not_read_is_quarantined(dirs: AgentDirs) -> None:
    """A 0600 file of another user: the agent runs as root without the capabilities that let root read
    any file (as the installed agent, its own user, is without them), and moves the file to quarantine;
    a readable spool file beside it is ingested."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to run the agent without CAP_DAC_OVERRIDE")
    agent = RunningAgent(
        dirs, CONFIG, command_prefix=["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    ).start()
    try:
        spool = dirs.data / "spool"
        others, _ = spooled("other-user", range(2))
        other = write_spool(spool, "other-user", others)
        os.chown(other, 65534, 65534)
        os.chmod(other, 0o600)
        frames, ids = spooled("readable", range(2))
        write_spool(spool, "readable", frames)
        wait_for(lambda: agent.counters("intake").get("spool_quarantined") == 1, 30, "the quarantined file")
        wait_for(lambda: delivered(dirs) == set(ids), 30, "the readable file's events")
        assert [name.split(".")[0] for name in quarantined(spool)] == ["other-user"]
        assert "cannot be opened: Permission denied" in agent.log()
    finally:
        agent.stop()


def test_an_entry_that_cannot_be_moved_to_quarantine_is_logged_counted_and_left_and_the_rest_is_ingested(
    dirs: AgentDirs,
) -> None:
    """When `quarantine` in the spool is not the agent's directory (here a file), a FIFO stays where it
    is, the failure is counted and logged, and the intake goes on ingesting the spool."""
    agent = RunningAgent(dirs, CONFIG).start()
    try:
        spool = dirs.data / "spool"
        (spool / "quarantine").write_bytes(b"")
        os.mkfifo(spool / "fifo.spool")
        wait_for(lambda: agent.counters("intake").get("spool_quarantine_failed", 0) >= 2, 30, "failures")
        frames, ids = spooled("good", range(2))
        write_spool(spool, "good", frames)
        wait_for(lambda: delivered(dirs) == set(ids), 30, "the good spool file's events")
        assert agent.counters("intake").get("spool_quarantined") == 0
        assert "cannot be moved to quarantine" in agent.log()
        assert [path.name for path in spool.glob("fifo.*.claimed")]
    finally:
        agent.stop()


def sparse_spool(path: Path, frames: list[bytes], size: int) -> None:
    """A spool file holding `frames` and then zeros up to `size` bytes, which take no disk (sparse),
    written aside and moved in whole, as an emitter's file is never seen half-made."""
    aside = path.parent.parent / path.name
    with aside.open("wb") as file:
        file.write(b"".join(encode_record(PLAIN + frame) for frame in frames))
        file.truncate(size)
    shutil.move(aside, path)


def test_a_spool_file_over_max_spool_file_bytes_is_quarantined_unread_and_the_rest_is_ingested(
    dirs: AgentDirs,
) -> None:
    """A 4 MiB file under `intake.max_spool_file_bytes = 1048576` goes to quarantine as it is, none of
    its records taken, with a line naming the key; a spool file beside it is ingested."""
    config = CONFIG.replace("[intake]\n", "[intake]\nmax_spool_file_bytes = 1048576\n")
    agent = RunningAgent(dirs, config).start()
    try:
        spool = dirs.data / "spool"
        intake_pid = agent.worker_pid("intake")
        big_frames, big_ids = spooled("big", range(3))
        sparse_spool(spool / "big.spool", big_frames, 4 * 1024 * 1024)
        frames, ids = spooled("good", range(3))
        write_spool(spool, "good", frames)
        wait_for(lambda: agent.counters("intake").get("spool_quarantined") == 1, 30, "the file quarantined")
        wait_for(lambda: delivered(dirs) == set(ids), 30, "the good spool file's events")
        (kept,) = (spool / "quarantine").iterdir()
        assert kept.stat().st_size == 4 * 1024 * 1024
        assert "4194304 bytes, more than intake.max_spool_file_bytes=1048576; left unread" in agent.log()
        assert agent.worker_pid("intake") == intake_pid
    finally:
        agent.stop()
    assert not set(big_ids) & delivered(dirs)


def test_a_6_gb_spool_file_is_read_a_record_at_a_time_by_an_agent_limited_to_3_gb(dirs: AgentDirs) -> None:
    """A sparse 6 GB file (anyone in the spool's group can make one) whose first records are good and
    the rest zeros, under the default bound, in an agent whose address space is limited to 3 GB: the
    good records arrive, the file goes to quarantine at the first zeros (no emitter writes an empty
    record), and the intake is the process it was. Read whole, it raised MemoryError at every start."""
    if shutil.which("prlimit") is None:
        pytest.skip("needs prlimit (util-linux) to limit the agent's address space")
    agent = RunningAgent(dirs, CONFIG, command_prefix=["prlimit", f"--as={3 * 10**9}"]).start()
    try:
        spool = dirs.data / "spool"
        intake_pid = agent.worker_pid("intake")
        frames, ids = spooled("huge", range(3))
        sparse_spool(spool / "huge.spool", frames, 6 * 1024**3)
        wait_for(lambda: agent.counters("intake").get("spool_quarantined") == 1, 30, "the file quarantined")
        wait_for(lambda: delivered(dirs) == set(ids), 30, "its good records' events")
        records = sum(len(encode_record(PLAIN + frame)) for frame in frames)
        assert f"corrupt record (of 0 bytes) at byte {records} of {6 * 1024**3}" in agent.log()
        assert "MemoryError" not in agent.log()
        assert agent.worker_pid("intake") == intake_pid
    finally:
        agent.stop()


def test_spool_files_with_long_or_foreign_names_are_claimed_under_short_clean_names(dirs: AgentDirs) -> None:
    """A file named with 249 letters (its claimed name used to pass NAME_MAX: ENAMETOOLONG, and the
    agent exited at every start) and one whose name is not UTF-8 (no JSON encoder takes it as a
    reject's source) are claimed under names cut and cleaned, the original named in the log; their
    events arrive, a bad record is a reject naming the cleaned name, and nothing is quarantined."""
    agent = RunningAgent(dirs, CONFIG).start()
    try:
        spool = dirs.data / "spool"
        intake_pid = agent.worker_pid("intake")
        elsewhere = dirs.root / "elsewhere"
        long_frames, long_ids = spooled("long", range(2))
        os.rename(write_spool(elsewhere, "long", long_frames), spool / ("a" * 249 + ".spool"))
        foreign_frames, foreign_ids = spooled("foreign", range(2))
        nested = b"\x91" * 1000 + b"\xc0"
        foreign = write_spool(elsewhere, "foreign", [foreign_frames[0], nested, foreign_frames[1]])
        os.rename(foreign, os.fsencode(spool) + b"/\xff\xfe.spool")
        wait_for(lambda: agent.counters("intake").get("spool_files") == 2, 30, "both files ingested")
        wait_for(lambda: delivered(dirs) == set(long_ids + foreign_ids), 30, "their events")
        (reject,) = [
            msgspec.json.decode(line)
            for line in next((dirs.data / "rejects").iterdir()).read_bytes().splitlines()
        ]
        assert reject["source"].startswith("spool:__.")
        log = agent.log()
        assert f"spool entry '{'a' * 249}.spool' claimed as {'a' * 200}." in log
        assert r"spool entry '\udcff\udcfe.spool' claimed as __." in log
        assert agent.counters("intake").get("spool_quarantined") == 0
        assert agent.worker_pid("intake") == intake_pid
    finally:
        agent.stop()


def test_entries_that_cannot_be_renamed_or_removed_are_counted_logged_and_left_and_the_rest_is_ingested(
    dirs: AgentDirs,
) -> None:
    """Two mount points in the spool (files bind-mounted there; rename and unlink fail with EBUSY): a
    `.spool` one cannot be claimed, a `.claimed` one is read but cannot be removed, nor moved to
    quarantine. Each failure is counted and logged, the entries stay, the events of the `.claimed` one
    arrive once, and the rest of the spool is ingested by the same intake process (an unlink that
    raised used to end it at every scan)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to bind-mount files into the spool")
    # Made before the agent starts: it would claim an empty file before the mount is over it.
    spool = dirs.data / "spool"
    spool.mkdir(parents=True)
    elsewhere = dirs.root / "elsewhere"
    held_frames, held_ids = spooled("held", range(2))
    stuck_frames, stuck_ids = spooled("stuck", range(2))
    sources = {
        spool / "held.spool": write_spool(elsewhere, "held", held_frames),
        spool / "stuck.claimed": write_spool(elsewhere, "stuck", stuck_frames),
    }
    mounted: list[Path] = []
    try:
        for target, source in sources.items():
            target.write_bytes(b"")
            if subprocess.run(["mount", "--bind", str(source), str(target)], check=False).returncode != 0:
                pytest.skip("bind-mounting a file is not permitted here")
            mounted.append(target)
        agent = RunningAgent(dirs, CONFIG).start()
        try:
            intake_pid = agent.worker_pid("intake")
            counters = agent.counters
            wait_for(lambda: counters("intake").get("spool_claim_failed", 0) >= 2, 30, "failed claims")
            wait_for(lambda: counters("intake").get("spool_quarantine_failed", 0) >= 2, 30, "failed moves")
            frames, ids = spooled("good", range(2))
            write_spool(spool, "good", frames)
            wait_for(lambda: delivered(dirs) == set(ids + stuck_ids), 30, "the good and stuck files' events")
            assert sorted(str(e["event_id"]) for e in file_events(dirs.data)) == sorted(ids + stuck_ids)
            log = agent.log()
            assert "'held.spool': cannot be claimed: OSError(16, 'Device or resource busy')" in log
            assert "stuck.claimed: cannot be ingested: OSError(16, 'Device or resource busy')" in log
            assert "cannot be moved to quarantine" in log
            assert agent.counters("intake").get("spool_quarantined") == 0
            assert agent.worker_pid("intake") == intake_pid
        finally:
            agent.stop()
    finally:
        for target in mounted:
            subprocess.run(["umount", str(target)], check=False)
    assert not set(held_ids) & delivered(dirs)
