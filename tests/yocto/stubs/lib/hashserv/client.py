"""Stand-in for hashserv.client: bb/siggen.py imports it at load time and
uses nothing from it unless a hash equivalence server is configured, which
tests/yocto/bb.py never does (see __init__.py)."""
