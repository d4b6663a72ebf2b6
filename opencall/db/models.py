"""Tortoise models: the whole persistent state of the appliance."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class User(Model):
    """An account. ``call_id`` is the permanent Call ID (assigned by signaling, unique, never reused)."""

    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=32)
    username_key = fields.CharField(max_length=32, unique=True)  # lowercased: "Alice" and "alice" are one
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    call_id = fields.CharField(max_length=8, unique=True, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # "Do not disturb from strangers": refuse callers without an account (services/blocks.py).
    block_strangers = fields.BooleanField(default=False, db_default=False)

    class Meta:
        table = "users"


class ApiKey(Model):
    """A user's one API key: a SHA-256 lookup hash plus the displayable key encrypted with data_dir's key."""

    id = fields.IntField(primary_key=True)
    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "models.User", related_name="api_key", on_delete=fields.CASCADE
    )
    user_id: int
    lookup_hash = fields.CharField(max_length=64, unique=True)
    encrypted_key = fields.TextField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "api_keys"


class Session(Model):
    """A website session. The cookie holds a random token, the table only its SHA-256."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "sessions"


class Invite(Model):
    """A one-time invite link back to its creator, claimed by the first other visitor that opens it."""

    id = fields.IntField(primary_key=True)
    token = fields.CharField(max_length=36, unique=True)
    creator: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="invites", on_delete=fields.CASCADE
    )
    creator_id: int
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    claimed_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="claimed_invites", null=True, on_delete=fields.SET_NULL
    )
    claimed_by_anon = fields.CharField(max_length=32, null=True)  # an anonymous browser's id
    claimed_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invites"


class Call(Model):
    """One call attempt between two Call IDs, written by signaling, read by the call history."""

    id = fields.IntField(primary_key=True)
    caller: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="outgoing_calls", null=True, on_delete=fields.SET_NULL
    )
    callee: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="incoming_calls", null=True, on_delete=fields.SET_NULL
    )
    caller_id: int | None
    callee_id: int | None
    caller_call_id = fields.CharField(max_length=8)
    callee_call_id = fields.CharField(max_length=8)
    caller_name = fields.CharField(max_length=32, null=True)  # the display name each party typed
    callee_name = fields.CharField(max_length=32, null=True)
    caller_username = fields.CharField(max_length=32, null=True)  # the account each party was signed in to
    callee_username = fields.CharField(max_length=32, null=True)
    caller_principal = fields.CharField(max_length=40, null=True)  # who placed it, so the callee can block them
    # Refused by the callee's blocks: listed in the caller's history only.
    blocked = fields.BooleanField(default=False, db_default=False)
    status = fields.CharField(max_length=10)
    started_at = fields.DatetimeField(db_index=True)
    answered_at = fields.DatetimeField(null=True)
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "calls"


class Block(Model):
    """A caller that ``owner`` refused: a Call ID, and the identity behind it when it was known."""

    id = fields.IntField(primary_key=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="blocks", on_delete=fields.CASCADE
    )
    owner_id: int
    call_id = fields.CharField(max_length=8)
    principal = fields.CharField(max_length=40, null=True)  # user-<id> or anon-<hex>
    label = fields.CharField(max_length=48, null=True)  # how the dashboard lists it
    created_at = fields.DatetimeField()

    class Meta:
        table = "blocks"
        unique_together = (("owner", "call_id"),)


class ContactMessage(Model):
    """A message sent through the contact form."""

    id = fields.IntField(primary_key=True)
    subject = fields.CharField(max_length=200)
    email = fields.CharField(max_length=254)
    message = fields.TextField()
    client_ip = fields.CharField(max_length=45)
    created_at = fields.DatetimeField()

    class Meta:
        table = "contact_messages"
