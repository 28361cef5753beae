"""`hyperctl generate --output FILE`: the batch file is private (its env values may be secrets)
and is never written through a symbolic link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.conftest import hyperctl, write_json

TEMPLATE = {"params": {"a": [1, 2]}, "execution": {"command": "echo {{ a }}", "env": {"API_KEY": "s3cret"}}}


def test_the_batch_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    template = write_json(tmp_path / "t.json", TEMPLATE)
    out = tmp_path / "batch.json"
    out.write_text("old\n")
    os.chmod(out, 0o644)
    before = os.umask(0o022)
    try:
        result = hyperctl("generate", "--template", str(template), "--output", str(out), "--force")
    finally:
        os.umask(before)

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "s3cret" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.json", "t.json"]  # no temporary file left


def test_an_output_that_is_a_link_is_refused_even_with_force(tmp_path: Path) -> None:
    template = write_json(tmp_path / "t.json", TEMPLATE)
    victim, dangling = tmp_path / "victim.txt", tmp_path / "nowhere.txt"
    victim.write_text("keep me\n")
    (tmp_path / "out.json").symlink_to(victim)
    (tmp_path / "new.json").symlink_to(dangling)

    for name, options in (("out.json", ["--force"]), ("new.json", [])):
        link = tmp_path / name
        result = hyperctl("generate", "--template", str(template), "--output", str(link), *options)
        assert (result.returncode, result.stderr) == (
            2,
            f"hyperctl: error: {link}: is a symbolic link; give the path of a file, not a link (nothing written)\n",
        )
        assert link.is_symlink()
    assert victim.read_text() == "keep me\n"
    assert not dangling.exists()
