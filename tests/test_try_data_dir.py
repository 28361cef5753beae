"""`hyperctl try --data-dir` naming something that is no folder: one clear line, exit 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import hyperctl


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda p: p.write_text("x"), "a file"),
        (lambda p: p.symlink_to(p.parent / "nowhere"), "a symbolic link to nothing"),
    ],
)
def test_a_data_dir_that_is_no_folder(tmp_path: Path, make: Callable[[Path], object], what: str) -> None:
    target = tmp_path / "x"
    make(target)

    result = hyperctl("try", "--data-dir", str(target), "--", "true")

    assert (result.returncode, result.stderr) == (2, f"hyperctl: error: --data-dir: {target} is {what}, not a folder\n")
    assert not (tmp_path / "nowhere").exists()
