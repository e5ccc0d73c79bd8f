"""Which actions wait for a human decision, and why. Pure; applied once, at submit.

An action waits in `awaiting_approval` when its producer set `requires_approval`, or when one of
the enabled rules (OPSBOT_APPROVAL_RULES, default all of them) matches:
  deletion    - operations that remove things (archive_card, ...: the routing table says which)
  permission  - permission changes (Drive share)
  bulk        - more than OPSBOT_BULK_THRESHOLD (10) items in one action: rows, updates, files
  money       - data carrying an amount of money (amount, price, total, cost, payment, ...)
  external    - communication leaving the organisation: a share, DM or message addressed to an
                e-mail domain outside OPSBOT_INTERNAL_DOMAINS, or a Slack channel listed in
                OPSBOT_EXTERNAL_CHANNELS (shared channels)
The first matching rule names the reason shown on the approval card.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from bot.actions import ActionSpec
from bot.config import Settings
from bot.routing import route_for

RULES = ("deletion", "permission", "bulk", "money", "external")
ROUTED_RULES = {"deletion": "deletion", "permission": "permission change"}  # rule -> route reason
BULK_FIELDS = ("values", "rows", "updates", "files", "labels")
MONEY_FIELDS = ("amount", "price", "total", "cost", "payment", "invoice_amount", "budget")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


@dataclass(frozen=True)
class ApprovalRules:
    enabled: frozenset[str] = frozenset(RULES)
    bulk_threshold: int = 10
    internal_domains: frozenset[str] = frozenset()
    external_channels: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> ApprovalRules:
        enabled = _names(settings.opsbot_approval_rules)
        if unknown := sorted(enabled - set(RULES)):
            raise ValueError(
                f"OPSBOT_APPROVAL_RULES: got {', '.join(unknown)}, "
                f"expected some of {', '.join(RULES)} (comma-separated; empty for none)"
            )
        return cls(
            enabled=enabled,
            bulk_threshold=settings.opsbot_bulk_threshold,
            internal_domains=_names(settings.opsbot_internal_domains),
            external_channels=_names(settings.opsbot_external_channels),
        )

    @cached_property
    def _checks(self) -> tuple[Callable[[ActionSpec], str | None], ...]:
        """The enabled rules' checks in RULES order, built once (this runs for every action
        submitted: the batch submit rate depends on it)."""
        checks: dict[str, Callable[[ActionSpec], str | None]] = {
            "bulk": self._bulk,
            "money": self._money,
            "external": self._external,
        }
        routed = (self._routed,) if self._routed_reasons else ()
        return routed + tuple(
            checks[name] for name in RULES if name in checks and name in self.enabled
        )

    @cached_property
    def _routed_reasons(self) -> frozenset[str]:
        """The routing table's reasons (by operation) that the enabled rules ask about."""
        return frozenset(reason for rule, reason in ROUTED_RULES.items() if rule in self.enabled)

    @cached_property
    def _external_channels(self) -> frozenset[str]:
        return frozenset(c.lstrip("#").lower() for c in self.external_channels)

    def reason(self, spec: ActionSpec) -> str | None:
        """Why `spec` needs a decision, or None."""
        if spec.requires_approval:
            return spec.approval_reason or "requested"
        for check in self._checks:
            if found := check(spec):
                return found
        return None

    def apply(self, specs: Iterable[ActionSpec]) -> list[ActionSpec]:
        """The specs, each marked `requires_approval` with its reason where a rule matches."""
        marked = []
        for spec in specs:
            why = self.reason(spec)
            marked.append(spec if why is None else replace(
                spec, requires_approval=True, approval_reason=why
            ))  # fmt: skip
        return marked

    def _routed(self, spec: ActionSpec) -> str | None:
        """The routing table marks deletions and permission changes by operation (an operation
        is one or the other, so checking both at once keeps the rules' order)."""
        route = route_for(spec.type)
        reason = route.approval_reason if route else None
        return reason if reason in self._routed_reasons else None

    def _bulk(self, spec: ActionSpec) -> str | None:
        if spec.data.keys().isdisjoint(BULK_FIELDS):  # the common case, cheaply
            return None
        for name in BULK_FIELDS:
            items = spec.data.get(name)
            if isinstance(items, list) and len(items) > self.bulk_threshold:
                return f"bulk change: {len(items)} {name} (over {self.bulk_threshold})"
        return None

    @staticmethod
    def _money(spec: ActionSpec) -> str | None:
        if spec.data.keys().isdisjoint(MONEY_FIELDS):
            return None
        found = next((k for k in MONEY_FIELDS if _has_value(spec.data.get(k))), None)
        return f"money: {found}" if found else None

    def _external(self, spec: ActionSpec) -> str | None:
        channel = str(spec.data.get("channel") or "").lstrip("#").lower()
        if channel and channel in self._external_channels:
            return f"external communication: #{channel}"
        if not self.internal_domains:
            return None
        for domain in _email_domains(spec.data):
            if domain not in self.internal_domains:
                return f"external communication: {domain}"
        return None


def _names(raw: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def _has_value(value: Any) -> bool:
    return value not in (None, "", 0, 0.0, False)


def _email_domains(data: dict[str, Any]) -> list[str]:
    """Domains of the e-mail addresses anywhere in the addressing fields of `data`."""
    fields = ("email", "share_with", "user", "to", "domain", "emails", "recipients")
    text = " ".join(str(data.get(name) or "") for name in fields)
    domains = [m.group(1).lower() for m in _EMAIL.finditer(text)]
    if data.get("domain") and "@" not in str(data["domain"]):
        domains.append(str(data["domain"]).lower())
    return domains
