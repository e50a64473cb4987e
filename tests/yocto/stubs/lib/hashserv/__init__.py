"""Stand-in for bitbake's `hashserv` package (the hash equivalence server).

The PyPI wheel bitbake-setup ships bitbake's `bb` library without `hashserv`,
yet `bb/siggen.py` does `import hashserv` and `import hashserv.client` at load
time, and `bb.parse` imports `bb.siggen`. tests/yocto/bb.py only parses and
fetches with the "noop" signature generator, which never talks to a hash
server, so all this module has to do is import cleanly, and refuse loudly if
something ever does try to reach a server.
"""

import re

_UNIHASH = re.compile(r"^[0-9a-f]{64}$")


def is_valid_unihash(unihash):
    # bb.siggen.check_hashserv_unihash() calls this; same rule as the real
    # one (a sha256 in hex), so a caller would see the same answer.
    return bool(_UNIHASH.match(unihash or ""))


def _unavailable(*_args, **_kwargs):
    raise RuntimeError(
        "hashserv is a stub in tests/yocto (no hash equivalence server): "
        "set BB_SIGNATURE_HANDLER to noop and leave BB_HASHSERVE unset"
    )


create_client = _unavailable
create_async_client = _unavailable
create_server = _unavailable
