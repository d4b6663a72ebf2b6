"""One-time invite links back to their creator.

"One-time" here: the first visitor other than the creator that opens an invite claims it: an account, or
an anonymous browser by its anonymous id. The claimant can open it again until it expires (reloads, a
retry after a missed call); anyone else gets 410. The creator's own look-ups never claim it.

The claim is also a pass: a stranger (no account) holding a live claim may ring the creator even when the
creator refuses strangers (services/blocks.py). The creator can revoke an invite before or after its use:
it then answers 410 to everyone and the pass ends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import Q

from opencall.db.models import Invite, User
from opencall.services.clock import utcnow
from opencall.services.errors import Gone, NotFound
from opencall.services.presence import Presence

TOKEN_LENGTH = 36  # len(str(uuid.uuid4()))


LIST_LIMIT = 50


@dataclass(frozen=True)
class InviteView:
    creator_username: str
    creator_call_id: str | None
    online: bool
    expires_at: datetime


@dataclass(frozen=True)
class OwnInvite:
    """One of the creator's invites, as the dashboard lists it."""

    token: str
    created_at: datetime
    expires_at: datetime
    claimed_at: datetime | None
    revoked_at: datetime | None


class Invites:
    def __init__(self, presence: Presence, ttl_seconds: int) -> None:
        self._presence = presence
        self._ttl = timedelta(seconds=ttl_seconds)

    async def generate(self, creator: User) -> str:
        """A new invite token (UUID4) valid for the configured TTL."""
        now = utcnow()
        invite = await Invite.create(
            token=str(uuid.uuid4()), creator=creator, created_at=now, expires_at=now + self._ttl
        )
        await Invite.filter(creator=creator, expires_at__lt=now).delete()
        return invite.token

    async def look_up(self, token: str, viewer: User | None, anonymous_id: str | None = None) -> InviteView:
        """The invite's creator and presence; claims it for the viewer (an account, else an anonymous
        browser) on first use by someone other than the creator."""
        token = token.lower()
        # Every token is a UUID4 string: another length is no invite (and the column would refuse it).
        invite = (await Invite.get_or_none(token=token).prefetch_related("creator")
                  if len(token) == TOKEN_LENGTH else None)
        if invite is None:
            raise NotFound("Invite not found")
        now = utcnow()
        if invite.revoked_at is not None:
            raise Gone("Invite revoked")
        if invite.expires_at <= now:
            raise Gone("Invite expired")
        if viewer is None or viewer.id != invite.creator_id:
            unclaimed = Q(claimed_by_id=None, claimed_by_anon=None)
            claim: dict[str, int | str | None]
            if viewer is not None:
                mine, claim = Q(claimed_by_id=viewer.id), {"claimed_by_id": viewer.id}
            else:
                mine, claim = Q(claimed_by_anon=anonymous_id), {"claimed_by_anon": anonymous_id}
            claimed = await Invite.filter(unclaimed | mine, id=invite.id).update(**claim, claimed_at=now)
            if not claimed:
                raise Gone("Invite already used")
        call_id = self._presence.online_call_id(invite.creator_id)
        return InviteView(invite.creator.username, call_id, call_id is not None, invite.expires_at)

    async def mine(self, creator: User) -> list[OwnInvite]:
        """The creator's invites that have not expired, newest first (up to 50)."""
        invites = await (Invite.filter(creator_id=creator.id, expires_at__gt=utcnow())
                         .order_by("-created_at", "-id").limit(LIST_LIMIT))
        return [OwnInvite(i.token, i.created_at, i.expires_at, i.claimed_at, i.revoked_at) for i in invites]

    async def revoke(self, creator: User, token: str) -> None:
        """End an invite of ``creator``, used or not; someone else's token is not found."""
        token = token.lower()
        mine = Invite.filter(token=token, creator_id=creator.id) if len(token) == TOKEN_LENGTH else None
        if mine is None or not await mine.exists():
            raise NotFound("Invite not found")
        await mine.filter(revoked_at=None).update(revoked_at=utcnow())  # the first revocation's time is kept
