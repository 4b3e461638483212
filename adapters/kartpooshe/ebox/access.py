"""Which boxes a logged-in person may open, and in which role (owner, attorney, representative).

A person owns the box of their own national code; an attorney reads a person's box the owner
named them on (MISSION §3: Kartpooshe lets an attorney act for the owner; here attorneys read and
do not reply); a representative reads and answers a company's box and manages its other
representatives (article 7: companies have boxes; someone must act for them).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.kartpooshe.ebox.store import EboxStore


@dataclass(frozen=True, slots=True)
class BoxAccess:
    owner_id: str
    role: str  # owner | attorney | representative

    @property
    def is_company(self) -> bool:
        return len(self.owner_id) == 11

    @property
    def may_reply(self) -> bool:
        return self.role in ("owner", "representative")

    @property
    def may_manage_attorneys(self) -> bool:
        return self.role == "owner" and not self.is_company

    @property
    def may_manage_representatives(self) -> bool:
        return self.role == "representative"


async def boxes_for(store: EboxStore, national_code: str) -> list[BoxAccess]:
    boxes = [BoxAccess(national_code, "owner")]
    boxes += [BoxAccess(o, "attorney") for o in await store.access.principals_of(national_code)]
    boxes += [
        BoxAccess(o, "representative") for o in await store.access.companies_of(national_code)
    ]
    return boxes
