"""The loopback S3 server's request log is replayed after a restart (src/drugslm_ops/stacks/loopback.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drugslm_ops.stacks.loopback import _recorded_entries


def test_entries_written_by_concurrent_requests_on_one_line_are_all_replayed(tmp_path: Path) -> None:
    first, second = json.dumps({"method": "PUT", "n": 1}), json.dumps({"method": "PUT", "n": 2})
    log = tmp_path / "s3-requests.jsonl"
    log.write_text(first + second + "\n\n" + json.dumps({"method": "POST", "n": 3}) + "\n")
    assert [entry["n"] for entry in _recorded_entries(log)] == [1, 2, 3]


def test_an_entry_cut_off_by_the_kill_is_skipped_but_damage_elsewhere_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "s3-requests.jsonl"
    log.write_text(json.dumps({"method": "PUT", "n": 1}) + "\n" + '{"method": "PU')
    assert [entry["n"] for entry in _recorded_entries(log)] == [1]
    log.write_text('{"method": "PU\n' + json.dumps({"method": "PUT", "n": 1}) + "\n")
    with pytest.raises(json.JSONDecodeError):
        _recorded_entries(log)
