"""REST blueprints: parse input, call a service, shape the output."""
