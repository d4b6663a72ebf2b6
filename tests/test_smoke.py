from tests.support import Server, register


def test_register_then_me(server: Server) -> None:
    client, username = register(server)
    me = client.get("/api/auth/me").json()
    assert me == {"authenticated": True, "username": username, "email": f"{username}@example.com"}
