"""The seam between OpenCall and its relay (turn/): the relay's settings from the config, its health, and the
policy that decides whom a principal may relay to. turn/ imports nothing of this; this imports turn/."""
