# Stub of oe-core's cargo.bbclass (scarthgap and later): the variables a
# recipe tunes (CARGO_SRC_DIR, CARGO_BUILD_FLAGS, ...) and the exported task
# functions a recipe may call or append to. Nothing is compiled.
inherit cargo_common

DEPENDS:append = " cargo-native"

# Cargo.toml's directory, relative to S.
CARGO_SRC_DIR ??= ""
CARGO_MANIFEST_PATH ??= "${S}/${CARGO_SRC_DIR}/Cargo.toml"
BUILD_MODE = "${@['--release', ''][d.getVar('DEBUG_BUILD') == '1']}"
# --frozen: Cargo.lock must be committed and current (scarthgap and later).
CARGO_BUILD_FLAGS = "-v --frozen --target ${RUST_HOST_SYS} ${BUILD_MODE} --manifest-path=${CARGO_MANIFEST_PATH}"
CARGO_TARGET_SUBDIR = "${RUST_HOST_SYS}/${@['release', 'debug'][d.getVar('DEBUG_BUILD') == '1']}"
B = "${WORKDIR}/build"

cargo_do_configure() {
	:
}
cargo_do_compile() {
	:
}
# The real one installs every executable of the target dir into ${bindir}.
cargo_do_install() {
	:
}
EXPORT_FUNCTIONS do_configure do_compile do_install
