"""A resident, preloaded analyze server for the `osptrack analyze` console script.

The client (client.py) is stdlib only and imported by osptrack.entry before anything else; the
server (daemon.py) imports the analyzer once and forks one child per request (child.py), which
becomes the process a direct run would have been. See docs/cli.md and docs/security.md.
"""
