"""The browser client: static files shipped as package data (no build step)."""
