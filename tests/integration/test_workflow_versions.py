"""Versions (hash + counter), artifacts and promotion on a real SQLite store."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import insert

from bot.store.engine import Store
from bot.workflows.definitions import Workflow
from bot.workflows.validate import WorkflowInvalid
from bot.workflows.versions import (
    RUNS,
    PromotionRefused,
    export_artifact,
    history,
    import_artifact,
    load_version,
    promote,
    register,
)

NOW = 1_700_000_000.0


def wf(text: str = "hi") -> Workflow:
    return Workflow("w").add_step("a", {"type": "echo", "data": {"text": text}})


def test_same_content_same_version_new_content_next_counter(store: Store) -> None:
    v1 = store.write_sync(lambda c: register(c, wf(), NOW))
    again = store.write_sync(lambda c: register(c, wf(), NOW + 1))
    v2 = store.write_sync(lambda c: register(c, wf("changed"), NOW + 2))
    assert (v1.version, again.version, v2.version) == (1, 1, 2)
    assert v1.hash == again.hash != v2.hash
    # `source` is not content: the same definition from a file is the same version.
    from_file = Workflow("w", source="x.yml").add_step(
        "a", {"type": "echo", "data": {"text": "hi"}}
    )
    assert store.write_sync(lambda c: register(c, from_file, NOW)).version == 1
    pinned = store.read_sync(lambda c: load_version(c, "w", 1))
    assert pinned.step("a").action.data == {"text": "hi"}
    assert (
        store.read_sync(lambda c: load_version(c, "w")).step("a").action.data["text"] == "changed"
    )


def add_run(store: Store, env: str, status: str, version: int = 1) -> None:
    row: dict[str, Any] = {
        "id": f"r-{env}-{status}", "name": "w", "version": version, "env": env,
        "status": status, "created_at": NOW,
    }  # fmt: skip
    store.write_sync(lambda c: c.execute(insert(RUNS).values(**row)))


def test_promotion_needs_a_success_in_the_previous_environment(store: Store) -> None:
    store.write_sync(lambda c: register(c, wf(), NOW))
    with pytest.raises(PromotionRefused, match="no successful run in dev"):
        store.write_sync(lambda c: promote(c, "w", "staging", now=NOW, actor="ann"))
    add_run(store, "dev", "failed")
    with pytest.raises(PromotionRefused):
        store.write_sync(lambda c: promote(c, "w", "staging", now=NOW, actor="ann"))
    add_run(store, "dev", "succeeded")
    done = store.write_sync(lambda c: promote(c, "w", "staging", now=NOW, actor="ann"))
    assert (done["from_env"], done["to_env"], done["forced"]) == ("dev", "staging", False)
    forced = store.write_sync(lambda c: promote(c, "w", "prod", now=NOW, actor="bob", force=True))
    assert forced["forced"] is True
    [entry] = store.read_sync(lambda c: history(c, "w"))
    assert [p["to_env"] for p in entry["promotions"]] == ["staging", "prod"]
    assert {"env": "dev", "status": "succeeded", "count": 1} in entry["runs"]
    with pytest.raises(ValueError, match="expected one of dev, staging, prod"):
        store.write_sync(lambda c: promote(c, "w", "qa", now=NOW, actor="ann"))


def test_export_import_round_trip_and_tampering(store: Store, tmp_path: Any) -> None:
    store.write_sync(lambda c: register(c, wf(), NOW))
    artifact = store.write_sync(lambda c: export_artifact(c, "w", "dev", NOW))
    assert artifact["checksum"].startswith("sha256:") and artifact["version"] == 1
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        got = other.write_sync(lambda c: import_artifact(c, json.loads(json.dumps(artifact)), NOW))
        assert got.version == 1 and got.hash == artifact["checksum"][7:]
        tampered = {**artifact, "definition": {**artifact["definition"], "timeout": 5}}
        with pytest.raises(WorkflowInvalid, match="checksum: does not match"):
            other.write_sync(lambda c: import_artifact(c, tampered, NOW))
        with pytest.raises(WorkflowInvalid, match="platform 'echo' is not enabled"):
            other.write_sync(lambda c: import_artifact(c, artifact, NOW, {"slack"}))
    finally:
        other.close()
