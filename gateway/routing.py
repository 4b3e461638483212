"""Operator routing: the number-portability table first, then the operators' prefix defaults.

Numbers move between operators (MCI, Irancell, Rightel and the MVNOs), so the prefix only
gives a default; a ported number is found in the ``portability`` table that admins load.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.config import OperatorConfig
from gateway.recipients import national_number
from gateway.store import Store


class Router:
    def __init__(self, operators: Iterable[OperatorConfig]) -> None:
        pairs = [(p, op.name) for op in operators for p in op.prefixes]
        # Longest prefix first, so "9990" beats "99".
        self._prefixes = sorted(pairs, key=lambda pair: -len(pair[0]))
        self.names = frozenset(op.name for op in operators)

    def by_prefix(self, msisdn: str) -> str | None:
        national = national_number(msisdn)
        for prefix, name in self._prefixes:
            if national.startswith(prefix):
                return name
        return None

    async def route(self, store: Store, msisdns: list[str]) -> dict[str, str | None]:
        """Operator per number for a claimed batch: one portability query, then prefixes."""
        ported = await store.messages.ported(msisdns) if msisdns else {}
        return {
            m: (ported[m] if ported.get(m) in self.names else self.by_prefix(m)) for m in msisdns
        }
