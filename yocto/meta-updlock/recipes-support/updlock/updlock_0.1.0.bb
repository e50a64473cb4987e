# nooelint: oelint.var.bbclassextend
# (No BBCLASSEXTEND: updlock guards the actuator of a device, a native or
# nativesdk build of it has no use on a build host.)
SUMMARY = "Update lock while a GPIO actuator is active (built from source)"
DESCRIPTION = "updlock takes the update lock that the balena supervisor and \
               balenaOS check before they restart services or reboot, exactly \
               while a critical section driven by a GPIO line runs. This \
               recipe builds it with the distro's Rust (1.75 or newer: \
               scarthgap and later); on kirkstone and balenaOS use updlock-bin."
HOMEPAGE = "https://github.com/updlock/updlock"
BUGTRACKER = "https://github.com/updlock/updlock/issues"
SECTION = "console/utils"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=2ca0d853b63da1c8215bd9448ff5c252 \
                    file://LICENSE-APACHE;md5=3b83ef96387f14655fc854ddc3c6bd57"
CVE_PRODUCT = "updlock"

# The release commit of v${PV}: yocto/release writes it, and CI checks that
# it carries version ${PV} and the Cargo.lock that updlock-crates.inc lists.
SRC_URI = "git://github.com/updlock/updlock.git;protocol=https;branch=main"
SRCREV = "6413e5f4d8d37341a172a47b8b33e30bb43c2097"

# An inline expression rather than ${WORKDIR}/git: correct both before
# UNPACKDIR existed and after whinlatter made a literal WORKDIR path fatal.
S = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}/git"

inherit cargo

require updlock-crates.inc
require updlock-systemd.inc

# The updlock crate is a member of the workspace at the top of the source.
CARGO_SRC_DIR = "firmware"

# On a musl distro (TCLIBC = "musl") link statically as the released binary
# is; from wrynose on bitbake honours it, before that the binary is dynamic.
RUSTFLAGS:append:libc-musl = " -C target-feature=+crt-static"

# rust-version in firmware/Cargo.toml: scarthgap's Rust 1.75 is the oldest
# that builds updlock. With an older one (kirkstone's 1.59, balenaOS's 1.62)
# say so at parse time instead of failing in do_compile (a recipe can only
# be skipped while it is parsed, hence anonymous python).
# nooelint: oelint.task.noanonpython
python () {
    have = (d.getVar('RUSTVERSION') or '').rstrip('%')
    if have:
        try:
            version = tuple(int(part) for part in have.split('.')[:2])
        except ValueError:
            return
        if version < (1, 75):
            raise bb.parse.SkipRecipe("updlock needs Rust 1.75 or newer, this build has %s: use updlock-bin" % have)
}

# Installs what the prebuilt recipe installs: either, never both.
RCONFLICTS:${PN} = "updlock-bin"
RREPLACES:${PN} = "updlock-bin"
