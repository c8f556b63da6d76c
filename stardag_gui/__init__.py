"""stardag's GUI: a NiceGUI app, entirely in Python, for monitoring builds and tasks and for
settings, in a browser or a native window.

It is a client of the registry's GraphQL API only (through ``stardag_core``'s client layer),
never of its database. ``stardag up`` serves it next to an embedded registry; ``stardag gui``
opens it on the configured registry.
"""
