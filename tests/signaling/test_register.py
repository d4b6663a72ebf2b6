"""register and Call IDs: anonymous throwaway IDs, permanent account IDs, display names."""

from __future__ import annotations

from tests.signaling.clients import CALL_ID_RE, new_account, offer
from tests.signaling.conftest import Connector
from tests.support import Server, query_db


async def test_register_gives_a_call_id_and_keeps_it(server: Server, connect: Connector) -> None:
    alice = await connect(server, "alice")
    await alice.emit("register")  # the payload is optional
    reply = await alice.next("registered")
    assert set(reply) == {"callId"} and CALL_ID_RE.match(reply["callId"]), reply
    # Registering again on the same connection renames it but keeps its Call ID.
    assert await alice.register("Alice") == reply["callId"]
    assert await alice.register(raw={}) == reply["callId"]
    alice.assert_quiet()


async def test_anonymous_sockets_get_a_fresh_call_id_per_connection(server: Server, connect: Connector) -> None:
    ids = []
    for n in range(3):
        peer = await connect(server, f"anon{n}")
        ids.append(await peer.register())
        await peer.close()
    together = [await connect(server, f"together{n}") for n in range(3)]
    ids += [await peer.register() for peer in together]
    assert len(set(ids)) == len(ids), ids
    assert all(CALL_ID_RE.match(call_id) for call_id in ids)


async def test_an_account_keeps_one_permanent_call_id(server: Server, connect: Connector) -> None:
    alice, bob = new_account(server), new_account(server)
    assert alice.stored_call_id() is None  # assigned on first register

    first = await connect(server, "alice-key", auth=alice.auth)
    call_id = await first.register()
    assert alice.stored_call_id() == call_id
    await first.close()

    # Later connections, by API key or by the website's session cookie, get the same ID — also at once.
    by_key = await connect(server, "alice-key2", auth=alice.auth)
    by_cookie = await connect(server, "alice-cookie", headers=alice.cookie_header)
    assert await by_key.register() == call_id
    assert await by_cookie.register("Alice") == call_id

    # Another account, and anonymous sockets, never get it.
    bob_socket = await connect(server, "bob", auth=bob.auth)
    bob_id = await bob_socket.register()
    anonymous = await connect(server, "anon")
    assert len({call_id, bob_id, await anonymous.register()}) == 3
    assert (alice.stored_call_id(), bob.stored_call_id()) == (call_id, bob_id)
    assert query_db(server, "SELECT call_id FROM users WHERE call_id IS NOT NULL "
                    "GROUP BY call_id HAVING COUNT(*) > 1") == []

    # A caller reaches every socket of the account under that one ID.
    caller = await connect(server, "caller")
    await caller.register()
    await caller.emit("call", {"targetCallId": call_id, "offer": offer()})
    await by_key.next("incoming-call")
    await by_cookie.next("incoming-call")


DISPLAY_NAMES = [
    ("  Alice  ", "Alice"),
    ("Anna Maria", "Anna Maria"),
    ("Zoë 🎧", "Zoë 🎧"),
    ("x" * 32, "x" * 32),
    ("y" * 33, "y" * 32),
    ("  " + "z" * 40 + "  ", "z" * 32),
    ("   ", None),
    ("\t\n", None),
    ("", None),
    (None, None),
]


async def test_display_name_rules(server: Server, connect: Connector) -> None:
    """Trimmed, capped at 32 characters, whitespace-only → null; each callee sees the result."""
    callee = await connect(server, "callee")
    callee_id = await callee.register()
    for sent, shown in DISPLAY_NAMES:
        caller = await connect(server, "caller")
        caller_id = await caller.register(raw={"displayName": sent})
        await caller.emit("call", {"targetCallId": callee_id, "offer": offer()})
        assert await callee.next("incoming-call") == {"callerCallId": caller_id, "callerDisplayName": shown,
                                                      "offer": offer(), "callerUsername": None}, sent
        await caller.emit("hangup", {"targetCallId": callee_id})
        await callee.next("call-ended")


async def test_register_rejects_a_bad_display_name(server: Server, connect: Connector) -> None:
    peer = await connect(server, "peer")
    assert await peer.error("register", {"displayName": 42}) == "displayName must be a string"
    assert await peer.error("register", {"displayName": ["Alice"]}) == "displayName must be a string"
    assert await peer.error("register", "Alice") == "Payload must be a JSON object"
    peer.assert_quiet()  # no registered for a refused register
    assert CALL_ID_RE.match(await peer.register("Alice"))
