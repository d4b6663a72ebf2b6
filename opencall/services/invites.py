"""One-time invite links back to their creator.

"One-time" here: the first visitor other than the creator that opens an invite claims it: an account, or
an anonymous browser by its anonymous id. The claimant can open it again until it expires (reloads, a
retry after a missed call); anyone else gets 410. The creator's own look-ups never claim it.
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


@dataclass(frozen=True)
class InviteView:
    creator_username: str
    creator_call_id: str | None
    online: bool
    expires_at: datetime


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
