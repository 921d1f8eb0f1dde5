"""The benchmarks' note of the file system under a ClickHouse server's data."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.clickhouse_server import file_system


def test_the_file_system_names_an_ext4_without_a_journal(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw,relatime 0 0\n"
        "/dev/loop0 /mnt/chj ext4 rw,relatime 0 0\n"
        "proc /proc proc rw 0 0\n"
    )
    ext4 = tmp_path / "ext4"
    for device, task in (("vda", "<none>"), ("loop0", "7935")):
        (ext4 / device).mkdir(parents=True)
        (ext4 / device / "journal_task").write_text(task + "\n")
    on_root = file_system(Path("/var/tmp"), mounts, ext4)
    assert on_root.startswith("ext4 WITHOUT a journal (/)") and "--clickhouse-dir" in on_root
    assert file_system(Path("/mnt/chj/data"), mounts, ext4) == "ext4, journaled (/mnt/chj)"
    assert file_system(Path("/mnt/chjx"), mounts, ext4).startswith("ext4 WITHOUT")  # not /mnt/chj
    assert file_system(Path("/proc/self"), mounts, ext4) == "proc (/proc)"


def test_the_file_system_of_this_machine_is_named(tmp_path: Path) -> None:
    assert "(" in file_system(tmp_path) and not file_system(tmp_path).startswith("unknown")
