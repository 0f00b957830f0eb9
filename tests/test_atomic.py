"""slem_ml.atomic: a file or a set of files appears whole or not at all, and nothing is left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slem_ml.atomic import atomic_path, staged_folder


def test_a_file_replaces_the_old_one_in_one_step_with_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "readings.csv"
    with atomic_path(target) as temp:
        temp.write_text("new")
        assert not target.exists() and temp.parent == target.parent  # same folder: one rename
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["readings.csv"]


def test_a_private_file_is_its_owners_only(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "bundle.joblib", mode=0o600) as temp:
        temp.write_bytes(b"pickle")
    assert (tmp_path / "bundle.joblib").stat().st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_staging_folder_is_hidden_beside_its_target_and_removed_whatever_happens(tmp_path: Path) -> None:
    with staged_folder(tmp_path / "runs", "upload") as folder:
        assert folder.parent == tmp_path / "runs" and folder.name.startswith(".upload-")
        (folder / "out").mkdir()
        (folder / "out" / "a.csv").write_text("a")
        os.replace(folder / "out", tmp_path / "runs" / "run-1")  # what the caller keeps, it moves out
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run-1"]
    with pytest.raises(KeyboardInterrupt), staged_folder(tmp_path / "runs", "upload") as folder:
        (folder / "b.csv").write_text("b")
        raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run-1"]
