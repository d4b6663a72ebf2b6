"""Socket.IO handlers: authenticate the connection, pass each event to the call service."""
