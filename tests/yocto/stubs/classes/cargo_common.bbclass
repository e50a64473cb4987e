# Stub of oe-core's cargo_common.bbclass: where cargo's home and the
# vendored crates live. The crate fetcher (bb/fetch2/crate.py) unpacks every
# crate://crates.io/NAME/VERSION entry to <unpack dir>/cargo_home/bitbake/NAME-VERSION/
# with a .cargo-checksum.json; the real class points cargo's crates-io source
# at that directory (`[source.bitbake] directory = ...`).
CARGO_HOME = "${WORKDIR}/cargo_home"
CARGO_VENDORING_DIRECTORY ??= "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}/cargo_home/bitbake"
CARGO_DISABLE_BITBAKE_VENDORING ??= "0"
EXTRA_OECARGO_PATHS ??= ""
# OE's own target triple (vendor included), not rustup's.
RUST_HOST_SYS = "${HOST_ARCH}${HOST_VENDOR}-${HOST_OS}"
RUST_BUILD_SYS = "${BUILD_ARCH}-unknown-linux-gnu"
# Flags for rustc; oe-core's rust classes always define it (library paths,
# debug prefix maps), so a recipe's `RUSTFLAGS:append` has something to
# append to. Empty here.
RUSTFLAGS ??= ""
