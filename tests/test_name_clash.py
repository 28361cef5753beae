"""Two batch files that give one batch name: the refusal says what each way out does."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import hyperctl, write_json


def test_the_name_clash_says_what_each_choice_does(tmp_path: Path, batches: Path) -> None:
    for word in ("first", "second"):
        (tmp_path / word).mkdir()
        doc = {"name": "t", "jobs": [{"name": word, "execution": {"command": "true"}}], "daemon": {"port": 0}}
        write_json(tmp_path / word / "t.json", doc)
    assert hyperctl("run", "--config", str(tmp_path / "first" / "t.json")).returncode == 0

    refused = hyperctl("run", "--config", str(tmp_path / "second" / "t.json"))

    assert (refused.returncode, refused.stderr) == (
        2,
        f"hyperctl: error: a batch named 't' already exists in {batches}, run from {tmp_path / 'first' / 't.json'}; "
        "to keep both, give this one another name (--name or `name:`); --name t makes this file that batch's jobs "
        "in place of its own (those it no longer lists leave it; one that succeeded with the same spec is not run "
        "again)\n",
    )
