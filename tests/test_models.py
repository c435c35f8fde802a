"""Model resolution's cache: a GGUF's conversion is found again by the file's content."""

import json
import os
import shutil

import pytest

from fctune import models
from fctune.io import sha256_file


def test_a_gguf_conversion_is_cached_by_content_not_by_path_or_time(tmp_path, monkeypatch):
    monkeypatch.setenv("FCTUNE_CACHE", str(tmp_path / "cache"))
    first = tmp_path / "venv1" / "m.gguf"
    first.parent.mkdir()
    first.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    again = tmp_path / "venv2" / "m.gguf"  # the same package installed again: another path, another time
    again.parent.mkdir()
    shutil.copy(first, again)
    os.utime(again, (1_000_000, 1_000_000))
    name = models._cache_name(first)
    assert name == models._cache_name(again)
    assert name.startswith("m-") and name.endswith(f"-c{models.CONVERSION_VERSION}")
    first.write_bytes(first.read_bytes()[:-1] + b"x")  # a changed file at the same path gets its own conversion
    os.utime(first, (2_000_000, 2_000_000))  # (a new time, as a reinstall gives, whatever the file system's clock)
    assert models._cache_name(first) != name
    index = json.loads((tmp_path / "cache" / "models" / "digests.json").read_text())
    assert len(index) == 3  # (path, size, time) -> digest: both copies, and the changed first one
    # asked again, a file is not read again: its digest comes from the index
    monkeypatch.setattr(models, "sha256_file", lambda path: pytest.fail(f"{path} hashed again"))
    assert models._cache_name(again) == name
    # an index that is not one (damaged, or written by something else) is replaced, not an error
    (tmp_path / "cache" / "models" / "digests.json").write_text("[1, 2]")
    monkeypatch.setattr(models, "sha256_file", sha256_file)
    assert models._cache_name(again) == name
    (tmp_path / "cache" / "models" / "digests.json").write_text("{not json")
    assert models._cache_name(again) == name
