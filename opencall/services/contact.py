"""Contact messages: validated, truncated, stored and logged."""

from __future__ import annotations

import logging
from typing import Any

from opencall.db.models import ContactMessage
from opencall.services import validation
from opencall.services.clock import utcnow
from opencall.services.errors import InvalidInput

log = logging.getLogger("opencall.contact")

SUBJECT_MAX, MESSAGE_MAX = 200, 5000


async def submit(body: dict[str, Any], client_ip: str) -> ContactMessage:
    """Store a contact message from api.md's fields (subject ≥ 2, valid email, message ≥ 5)."""
    subject = _text(body, "subject").strip()
    if len(subject) < 2:
        raise InvalidInput("subject must be at least 2 characters")
    email = validation.email(_text(body, "email"))
    message = _text(body, "message").strip()
    if len(message) < 5:
        raise InvalidInput("message must be at least 5 characters")
    stored = await ContactMessage.create(
        subject=subject[:SUBJECT_MAX], email=email, message=message[:MESSAGE_MAX],
        client_ip=client_ip, created_at=utcnow(),
    )
    log.info("contact message #%d from %s: %s", stored.id, email, stored.subject)  # escaped by opencall.logging_setup
    return stored


def _text(body: dict[str, Any], name: str) -> str:
    """A required string field that can be stored: JSON may carry a lone surrogate, which UTF-8 cannot encode."""
    return validation.storable(validation.required_text(body, name), name)
