"""Definition versions (content hash + counter per name), artifacts and environment promotion.

A version is the sha256 of a definition's canonical JSON plus a counter: the first content seen
for a name is version 1, the next different content version 2, and so on; loading identical
content again gives the same version. A run pins (name, version), so editing the file does not
change a running run. Promotion dev -> staging -> prod refuses a version that has not run
successfully in the previous environment unless forced. All functions take a Connection: call
them inside `store.write` / `store.read`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select

from bot.routing import route_for
from bot.store.audit import audit_row, write_audit
from bot.store.tables import WorkflowPromotionRow, WorkflowRunRow, WorkflowVersionRow
from bot.workflows.definitions import Workflow
from bot.workflows.loader import parse_workflow
from bot.workflows.validate import Problem, WorkflowInvalid, validate

VERSIONS = WorkflowVersionRow.__table__  # type: ignore[attr-defined]
RUNS = WorkflowRunRow.__table__  # type: ignore[attr-defined]
PROMOTIONS = WorkflowPromotionRow.__table__  # type: ignore[attr-defined]
ENVIRONMENTS = ("dev", "staging", "prod")
ARTIFACT_KIND = "opsbot.workflow/v1"


class PromotionRefused(ValueError):
    """The version has no successful run in the previous environment (use force to override)."""


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    hash: str


def canonical(workflow: Workflow) -> str:
    return json.dumps(workflow.to_dict(), sort_keys=True, separators=(",", ":"), default=str)


def content_hash(workflow: Workflow) -> str:
    return hashlib.sha256(canonical(workflow).encode()).hexdigest()


def register(conn: Connection, workflow: Workflow, now: float) -> Version:
    """The version of this content, created (next counter) when it is new."""
    digest = content_hash(workflow)
    row = conn.execute(
        select(VERSIONS.c.version).where(
            VERSIONS.c.name == workflow.name, VERSIONS.c.hash == digest
        )
    ).first()
    if row is not None:
        return Version(workflow.name, int(row[0]), digest)
    latest = conn.execute(
        select(func.max(VERSIONS.c.version)).where(VERSIONS.c.name == workflow.name)
    ).scalar()
    number = int(latest or 0) + 1
    conn.execute(
        insert(VERSIONS).values(
            name=workflow.name,
            version=number,
            hash=digest,
            definition=canonical(workflow),
            created_at=now,
        )
    )
    return Version(workflow.name, number, digest)


def load_version(conn: Connection, name: str, version: int | None = None) -> Workflow:
    """A stored definition (the latest when `version` is None). KeyError when unknown."""
    query = select(VERSIONS.c.definition, VERSIONS.c.version).where(VERSIONS.c.name == name)
    query = (
        query.where(VERSIONS.c.version == version)
        if version is not None
        else query.order_by(VERSIONS.c.version.desc()).limit(1)
    )
    row = conn.execute(query).first()
    if row is None:
        raise KeyError(f"workflow {name!r} has no version {version if version else '(none)'}")
    return from_canonical(json.loads(row[0]), f"{name} v{row[1]}")


def from_canonical(raw: dict[str, Any], source: str) -> Workflow:
    workflow, problems = parse_workflow(str(raw.get("name", "")), raw, source)
    if workflow is None or problems:
        raise WorkflowInvalid(
            problems or [Problem(source or "definition", "not a workflow definition")]
        )
    return workflow


def history(conn: Connection, name: str) -> list[dict[str, Any]]:
    """Every version of `name`, newest first, with its runs per environment and promotions."""
    versions = conn.execute(
        select(VERSIONS).where(VERSIONS.c.name == name).order_by(VERSIONS.c.version.desc())
    ).mappings()
    out = []
    for v in versions:
        runs = conn.execute(
            select(RUNS.c.env, RUNS.c.status, func.count())
            .where(RUNS.c.name == name, RUNS.c.version == v["version"])
            .group_by(RUNS.c.env, RUNS.c.status)
        ).all()
        promotions = conn.execute(
            select(PROMOTIONS)
            .where(PROMOTIONS.c.name == name, PROMOTIONS.c.version == v["version"])
            .order_by(PROMOTIONS.c.at)
        ).mappings()
        out.append(
            {
                "version": v["version"],
                "hash": v["hash"],
                "created_at": v["created_at"],
                "runs": [{"env": e, "status": s, "count": n} for e, s, n in runs],
                "promotions": [_promotion(dict(p)) for p in promotions],
            }
        )
    return out


def _promotion(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("from_env", "to_env", "forced", "actor", "at", "comment")
    return {k: row[k] for k in keys}


def promote(
    conn: Connection,
    name: str,
    to_env: str,
    *,
    now: float,
    actor: str,
    version: int | None = None,
    force: bool = False,
    comment: str | None = None,
) -> dict[str, Any]:
    """Record a promotion of `name` (latest version by default) into `to_env`."""
    if to_env not in ENVIRONMENTS:
        raise ValueError(f"--to: got {to_env!r}, expected one of {', '.join(ENVIRONMENTS)}")
    workflow = load_version(conn, name, version)
    info = register(conn, workflow, now)
    index = ENVIRONMENTS.index(to_env)
    from_env = ENVIRONMENTS[index - 1] if index else None
    if from_env and not force and not _succeeded_in(conn, info, from_env):
        raise PromotionRefused(
            f"{name} v{info.version} has no successful run in {from_env}; "
            f"run it there first or promote with force"
        )
    values = {
        "name": name, "version": info.version, "hash": info.hash, "from_env": from_env,
        "to_env": to_env, "forced": force, "actor": actor, "at": now, "comment": comment,
    }  # fmt: skip
    conn.execute(insert(PROMOTIONS).values(**values))
    write_audit(
        conn,
        [audit_row(now, name, from_env, to_env, actor=actor, entity="workflow", detail=values)],
    )
    return values


def _succeeded_in(conn: Connection, info: Version, env: str) -> bool:
    found = conn.execute(
        select(RUNS.c.id).where(
            RUNS.c.name == info.name,
            RUNS.c.version == info.version,
            RUNS.c.env == env,
            RUNS.c.status == "succeeded",
        )
    ).first()
    return found is not None


def export_artifact(
    conn: Connection, name: str, env: str, now: float, version: int | None = None
) -> dict[str, Any]:
    """A self-contained artifact: definition, version, checksum, environment."""
    workflow = load_version(conn, name, version)
    info = register(conn, workflow, now)
    return {
        "kind": ARTIFACT_KIND,
        "name": name,
        "version": info.version,
        "checksum": f"sha256:{info.hash}",
        "environment": env,
        "exported_at": now,
        "definition": workflow.to_dict(),
    }


def import_artifact(
    conn: Connection, artifact: Any, now: float, available_platforms: set[str] | None = None
) -> Version:
    """Check an artifact (kind, checksum, definition, platforms enabled here) and register it.
    Problem locations start at the workflow's name ("w.steps[0] (a).action"), once."""
    if not isinstance(artifact, dict):
        raise WorkflowInvalid([Problem("document", "expected a JSON object (an exported one)")])
    if artifact.get("kind") != ARTIFACT_KIND:
        got = artifact.get("kind")
        raise WorkflowInvalid([Problem("kind", f"got {got!r}, expected {ARTIFACT_KIND!r}")])
    workflow = from_canonical(artifact.get("definition") or {}, "")
    problems = validate(workflow)
    if f"sha256:{content_hash(workflow)}" != artifact.get("checksum"):
        problems.append(Problem(f"{workflow.name}.checksum", "does not match the definition"))
    if available_platforms is not None:
        problems += _missing_platforms(workflow, available_platforms, workflow.name)
    if problems:
        raise WorkflowInvalid(problems)
    return register(conn, workflow, now)


def _missing_platforms(workflow: Workflow, available: set[str], source: str) -> list[Problem]:
    problems = []
    for i, step in enumerate(workflow.steps):
        route = route_for(step.action.type)
        if route is not None and route.platform not in available:
            problems.append(
                Problem(
                    f"{source}.steps[{i}] ({step.name}).action",
                    f"platform {route.platform!r} is not enabled in this installation",
                )
            )
    return problems
