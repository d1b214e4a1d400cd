"""Issue 15: the embedded models' weights hash (~120 MB read on every server start) is recorded in the shot
database by the files' state, and taken from there while the files are as they were; any change to a file is
hashed again."""

from __future__ import annotations

import os
from pathlib import Path

from inference_server.faces.dlib_models import REQUIRED_FILES, DlibFaceModels
from inference_server.file_digests import (
    content_digest,
    files_signature,
    remembered_content_digest,
)
from inference_server.store.shot_db import ShotDatabase


def test_a_recorded_digest_is_taken_while_the_files_are_unchanged(tmp_path: Path) -> None:
    files = [tmp_path / "a.dat", tmp_path / "b.dat"]
    files[0].write_bytes(b"first weights")
    files[1].write_bytes(b"second weights")
    db = ShotDatabase(tmp_path / "shots.sqlite")
    digest = remembered_content_digest(files, db)
    assert digest == content_digest(files) and db.file_digest(files_signature(files)) == digest
    # a new server (another connection to the same database file) takes the recorded digest without reading:
    # shown by a row that only the database holds
    again = ShotDatabase(tmp_path / "shots.sqlite")
    again.remember_file_digest(files_signature(files), "recorded")
    assert remembered_content_digest(files, again) == "recorded"

    # a write of the same size with the modification time put back still changes the state (status-change time)
    st = os.stat(files[1])
    files[1].write_bytes(b"SECOND weights")
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert remembered_content_digest(files, again) == content_digest(files) != digest
    # another file put in a file's place (a new inode), and a file renamed away, too
    replacement = tmp_path / "new.dat"
    replacement.write_bytes(b"first weights")
    os.replace(replacement, files[0])
    signature = files_signature(files)
    assert again.file_digest(signature) is None
    assert remembered_content_digest(files, again) == content_digest(files)
    assert again.file_digest(signature) == content_digest(files)


def test_the_database_keeps_a_bounded_number_of_digests(tmp_path: Path) -> None:
    db = ShotDatabase(tmp_path / "shots.sqlite")
    for k in range(5):
        assert db.remember_file_digest(f"state {k}", f"digest {k}", kept=3)
    assert [db.file_digest(f"state {k}") for k in range(5)] == [None, None, "digest 2", "digest 3", "digest 4"]


def test_the_models_weights_hash_is_the_same_recorded_or_read(dlib_models: DlibFaceModels, tmp_path: Path) -> None:
    files = [dlib_models.directory / name for name in REQUIRED_FILES]
    db = ShotDatabase(tmp_path / "shots.sqlite")
    assert remembered_content_digest(files, db) == dlib_models.weights_hash()
    assert remembered_content_digest(files, ShotDatabase(tmp_path / "shots.sqlite")) == dlib_models.weights_hash()
