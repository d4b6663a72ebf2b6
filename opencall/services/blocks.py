"""Who may ring an account: the callers it blocked, and "Do not disturb from strangers".

A block names a Call ID and, when it can be learnt, the identity behind it (``user-<id>`` or the anonymous
browser's ``anon-<hex>``): an anonymous caller gets a new Call ID with every connection, so blocking only the
Call ID would stop nobody. The identity comes from the socket that uses the Call ID now, else the account that
owns it, else the latest call that Call ID placed to the blocker (the calls table keeps each caller's identity).

A stranger is a caller without an account. With ``strangers`` on, only the strangers holding a live claim of
one of the account's invites (claimed, neither expired nor revoked: services/invites.py) may ring it.

The rules of each account are read once and kept in memory (this process is the only writer: one node), so a
``call`` costs no query unless the callee refuses strangers and the caller is one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from opencall.db.models import Block, Call, Invite, User
from opencall.services.callids import is_call_id
from opencall.services.clock import utcnow
from opencall.services.errors import InvalidInput, NotFound
from opencall.services.identity import Identity, account_principal, verified_label

MAX_BLOCKS = 500
ANONYMOUS_PREFIX = "anon-"


@dataclass(frozen=True)
class BlockedCaller:
    call_id: str
    label: str | None
    blocked_at: datetime


@dataclass(frozen=True)
class BlockList:
    """What the dashboard shows: the blocked callers, newest first, and the strangers switch."""

    strangers: bool
    blocked: list[BlockedCaller]


@dataclass(frozen=True)
class _Rules:
    strangers: bool
    call_ids: frozenset[str]
    principals: frozenset[str]


def _call_id(value: object) -> str:
    if not isinstance(value, str) or not is_call_id(value.strip().upper()):
        raise InvalidInput("callId must be a Call ID (8 characters)")
    return value.strip().upper()


class Blocks:
    """The blocks of every account, and the check of a ringing attempt against them."""

    def __init__(self, live_identity: Callable[[str], Identity | None]) -> None:
        self._live_identity = live_identity
        self._rules: dict[int, _Rules] = {}

    async def refuses(self, owner_id: int, call_id: str, principal: str | None, signed_in: bool) -> bool:
        """Whether ``owner_id`` refuses a call from ``call_id`` placed by ``principal``."""
        rules = self._rules.get(owner_id) or await self._load(owner_id)
        if call_id in rules.call_ids or (principal is not None and principal in rules.principals):
            return True
        if signed_in or not rules.strangers:
            return False
        return not await self._holds_invite(owner_id, principal)

    async def list(self, owner: User) -> BlockList:
        blocks = await Block.filter(owner_id=owner.id).order_by("-created_at", "-id")
        return BlockList(owner.block_strangers,
                         [BlockedCaller(b.call_id, b.label, b.created_at) for b in blocks])

    async def add(self, owner: User, value: object) -> BlockList:
        """Block a Call ID (idempotent), with the identity behind it when known."""
        call_id = _call_id(value)
        if call_id == owner.call_id:
            raise InvalidInput("You cannot block yourself")
        if not await Block.exists(owner_id=owner.id, call_id=call_id):
            if await Block.filter(owner_id=owner.id).count() >= MAX_BLOCKS:
                raise InvalidInput(f"You can block at most {MAX_BLOCKS} Call IDs")
            identity = await self._identity(owner.id, call_id)
            await Block.create(owner_id=owner.id, call_id=call_id, principal=identity.principal,
                               label=identity.label, created_at=utcnow())
            self._rules.pop(owner.id, None)
        return await self.list(owner)

    async def remove(self, owner: User, value: object) -> BlockList:
        call_id = _call_id(value)
        if not await Block.filter(owner_id=owner.id, call_id=call_id).delete():
            raise NotFound("Call ID is not blocked")
        self._rules.pop(owner.id, None)
        return await self.list(owner)

    async def set_strangers(self, owner: User, value: object) -> BlockList:
        if not isinstance(value, bool):
            raise InvalidInput("blocked must be true or false")
        owner.block_strangers = value
        await User.filter(id=owner.id).update(block_strangers=value)
        self._rules.pop(owner.id, None)
        return await self.list(owner)

    async def _load(self, owner_id: int) -> _Rules:
        user = await User.get_or_none(id=owner_id)
        blocks = await Block.filter(owner_id=owner_id).values_list("call_id", "principal")
        rules = _Rules(bool(user and user.block_strangers), frozenset(c for c, _ in blocks),
                       frozenset(p for _, p in blocks if p))
        self._rules[owner_id] = rules
        return rules

    async def _identity(self, owner_id: int, call_id: str) -> Identity:
        live = self._live_identity(call_id)
        if live is not None and live.principal is not None:
            return live
        account = await User.get_or_none(call_id=call_id)
        if account is not None:
            return Identity(account_principal(account.id), account.username)
        last = await (Call.filter(callee_id=owner_id, caller_call_id=call_id).order_by("-started_at", "-id")
                      .first())
        if last is not None:
            return Identity(last.caller_principal,
                            verified_label(last.caller_username, last.caller_name, call_id))
        return live or Identity(None, None)

    @staticmethod
    async def _holds_invite(owner_id: int, principal: str | None) -> bool:
        """A stranger's pass: a live claim of one of the owner's invites by its anonymous id."""
        if principal is None or not principal.startswith(ANONYMOUS_PREFIX):
            return False
        return await Invite.exists(creator_id=owner_id, claimed_by_anon=principal, revoked_at=None,
                                   expires_at__gt=utcnow())
