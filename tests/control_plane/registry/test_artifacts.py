"""Content addressing and immutability on disk, through `ArtifactStore` directly."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from control_plane.errors import Conflict, ValidationError
from control_plane.registry.artifacts import ArtifactStore, tree_digest
from tests.control_plane.registry.conftest import make_model

FILES = {"MLmodel": b"flavors: {}\n", "model.pkl": b"\x80\x04weights" * 100,
         "sub/deeper/conda.yaml": b"name: env\n"}


def store_of(tmp_path: Path, source: Path) -> tuple[ArtifactStore, str, str]:
    artifacts = ArtifactStore(tmp_path / "home")
    staged = artifacts.stage(source)
    assert artifacts.place(staged)
    return artifacts, staged.tree.digest, staged.entry


def test_the_digest_depends_on_content_names_and_the_executable_bit(tmp_path: Path) -> None:
    base = tree_digest(make_model(tmp_path / "a" / "model", FILES))
    assert tree_digest(make_model(tmp_path / "b" / "model", FILES)) == base
    assert tree_digest(make_model(tmp_path / "c" / "model", {**FILES, "MLmodel": b"x"})) != base
    renamed = {("MLmodel2" if k == "MLmodel" else k): v for k, v in FILES.items()}
    assert tree_digest(make_model(tmp_path / "d" / "model", renamed)) != base
    assert tree_digest(make_model(tmp_path / "e" / "other-name", FILES)) != base
    executable = make_model(tmp_path / "f" / "model", FILES)
    os.chmod(executable / "model.pkl", 0o755)
    assert tree_digest(executable) != base
    empty_folder = make_model(tmp_path / "g" / "model", FILES)
    (empty_folder / "empty").mkdir()
    assert tree_digest(empty_folder) != base
    assert base.size == sum(len(v) for v in FILES.values())


def test_the_digest_ignores_timestamps_and_other_mode_bits(tmp_path: Path) -> None:
    base = tree_digest(make_model(tmp_path / "a" / "model", FILES))
    other = make_model(tmp_path / "b" / "model", FILES)
    os.utime(other / "model.pkl", (1, 1))
    os.chmod(other / "MLmodel", 0o600)
    assert tree_digest(other) == base


def test_a_single_file_and_a_folder_holding_it_differ(tmp_path: Path) -> None:
    single = make_model(tmp_path / "a", {"model.pkl": b"weights"}) / "model.pkl"
    folder = make_model(tmp_path / "b" / "model.pkl", {"model.pkl": b"weights"})
    assert tree_digest(single) != tree_digest(folder)
    artifacts, digest, entry = store_of(tmp_path, single)
    assert entry == "model.pkl"
    assert artifacts.location(digest, entry).read_bytes() == b"weights"
    assert artifacts.location(digest, entry).is_file()


def test_stored_artifacts_are_read_only_and_keep_the_executable_bit(tmp_path: Path) -> None:
    source = make_model(tmp_path / "src" / "model", FILES)
    os.chmod(source / "model.pkl", 0o755)
    artifacts, digest, entry = store_of(tmp_path, source)
    stored = artifacts.location(digest, entry)
    modes = {p.relative_to(stored).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in [stored, *stored.rglob("*")]}
    assert modes == {".": 0o555, "MLmodel": 0o444, "model.pkl": 0o555, "sub": 0o555,
                     "sub/deeper": 0o555, "sub/deeper/conda.yaml": 0o444}
    assert stat.S_IMODE((artifacts.objects / digest).stat().st_mode) == 0o555
    if os.geteuid() != 0:  # root writes anyway: the modes above are what protects
        with pytest.raises(PermissionError):
            (stored / "MLmodel").write_bytes(b"changed")
    assert artifacts.verify(digest, entry).digest == digest


def test_equal_content_is_stored_once(tmp_path: Path) -> None:
    artifacts, digest, _ = store_of(tmp_path, make_model(tmp_path / "a" / "model", FILES))
    again = artifacts.stage(make_model(tmp_path / "b" / "model", FILES))
    assert again.tree.digest == digest
    assert not artifacts.place(again)
    assert artifacts.digests() == {digest}
    assert list(artifacts.temp.iterdir()) == []


def test_symbolic_links_are_followed(tmp_path: Path) -> None:
    outside = make_model(tmp_path / "outside", {"weights.bin": b"w" * 10, "d/x": b"x"})
    source = make_model(tmp_path / "src" / "model", {"MLmodel": b"m"})
    (source / "weights.bin").symlink_to(outside / "weights.bin")
    (source / "d").symlink_to(outside / "d")
    plain = make_model(tmp_path / "plain" / "model",
                       {"MLmodel": b"m", "weights.bin": b"w" * 10, "d/x": b"x"})
    assert tree_digest(source) == tree_digest(plain)
    artifacts, digest, entry = store_of(tmp_path, source)
    stored = artifacts.location(digest, entry)
    assert not (stored / "weights.bin").is_symlink()
    (outside / "weights.bin").write_bytes(b"changed")
    assert (stored / "weights.bin").read_bytes() == b"w" * 10


def test_a_link_to_nothing_a_loop_and_a_socket_are_refused(tmp_path: Path) -> None:
    dangling = make_model(tmp_path / "dangling" / "model", {"MLmodel": b"m"})
    (dangling / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValidationError, match="'model/gone' is a symbolic link to nothing"):
        tree_digest(dangling)
    looped = make_model(tmp_path / "looped" / "model", {"MLmodel": b"m"})
    (looped / "again").symlink_to(looped)
    with pytest.raises(ValidationError, match="'model/again' contains itself"):
        tree_digest(looped)
    with_socket = make_model(tmp_path / "s" / "m", {"MLmodel": b"m"})
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(with_socket / "sock"))
        with pytest.raises(ValidationError, match="'m/sock' is neither a file nor a folder"):
            tree_digest(with_socket)


def test_a_refused_copy_leaves_nothing_behind(tmp_path: Path) -> None:
    source = make_model(tmp_path / "src" / "model", {"a": b"a", "z": b"z"})
    (source / "b-gone").symlink_to(tmp_path / "nowhere")
    artifacts = ArtifactStore(tmp_path / "home")
    with pytest.raises(ValidationError):
        artifacts.stage(source)
    assert list(artifacts.temp.iterdir()) == []
    assert artifacts.digests() == set()


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        ArtifactStore(tmp_path / "home").stage(tmp_path / "nope")


def test_copy_out_is_writable_and_refuses_to_overwrite(tmp_path: Path) -> None:
    source = make_model(tmp_path / "src" / "model", FILES)
    artifacts, digest, entry = store_of(tmp_path, source)
    copy = artifacts.copy_out(digest, entry, tmp_path / "out")
    assert copy == tmp_path / "out" / "model"
    assert tree_digest(copy) == tree_digest(source)
    (copy / "MLmodel").write_bytes(b"mine now")
    assert stat.S_IMODE((copy / "sub").stat().st_mode) == 0o755
    with pytest.raises(Conflict, match="exists already"):
        artifacts.copy_out(digest, entry, tmp_path / "out")


def test_remove_deletes_the_read_only_folder(tmp_path: Path) -> None:
    artifacts, digest, _ = store_of(tmp_path, make_model(tmp_path / "src" / "model", FILES))
    artifacts.remove(digest)
    assert artifacts.digests() == set()
    assert list(artifacts.temp.iterdir()) == []
