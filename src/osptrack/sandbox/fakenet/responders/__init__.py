"""One module per fake-network service, behind the interface in base.py."""
