"""partition_key: Flock's sharding label, recorded on the artifact it was published with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flock_es.domain.events import ArtifactPublished, EventKind, make_event
from flock_es.projection.fold import fold
from tests.conftest import run_cli

PROGRAMS = Path(__file__).parent / "programs"


def test_an_artifact_published_without_it_folds_to_none() -> None:
    body: ArtifactPublished = {"id": "a1", "type": "Order", "payload": {"item": "tea"}}
    state = fold([make_event("r", EventKind.ARTIFACT_PUBLISHED, body, 1.0)])
    assert state.artifacts["a1"].partition_key is None
    body = {**body, "id": "a2", "partition_key": "eu"}
    state = fold([make_event("r", EventKind.ARTIFACT_PUBLISHED, body, 1.0)])
    assert state.artifacts["a2"].partition_key == "eu"


@pytest.mark.slow
def test_partition_keys_are_recorded_shown_and_replayed(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    out = run_cli(["run", PROGRAMS / "partitions.py", "--db", db, "-q"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["tea eu-west", "jam us-east", "oil us-east", "salt None"]
    shown = run_cli(["show", "latest", "--db", db, "--json"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    by_type = data["artifacts"]
    orders = [a.get("partition_key") for a in by_type["Order"]["artifacts"]]
    assert orders == ["eu-west", "us-east", "us-east", None]
    # as in Flock, an agent's outputs do not inherit their input's partition key
    assert all("partition_key" not in a for a in by_type["Packed"]["artifacts"])
    replay = run_cli(["replay", "latest", "--db", db], cwd=tmp_path)
    assert replay.returncode == 0 and "identical" in replay.stdout, replay.stdout + replay.stderr
