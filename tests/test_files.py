import pytest

from landmarks.files import atomic_write


def test_atomic_write_replaces_the_file_only_when_the_block_ends_cleanly(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["list.txt"]
    with atomic_write(path) as handle:
        handle.write(b"new")
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["list.txt"]


def test_atomic_write_gives_the_permissions_a_plain_open_would(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    with atomic_write(tmp_path / "atomic") as handle:
        handle.write(b"x")
    assert (tmp_path / "atomic").stat().st_mode == plain.stat().st_mode
