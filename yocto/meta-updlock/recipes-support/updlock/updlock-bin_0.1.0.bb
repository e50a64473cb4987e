# nooelint: oelint.var.bbclassextend
# (No BBCLASSEXTEND: updlock guards the actuator of a device, a native or
# nativesdk build of it has no use on a build host.)
SUMMARY = "Update lock while a GPIO actuator is active (prebuilt static binary)"
DESCRIPTION = "updlock takes the update lock that the balena supervisor and \
               balenaOS check before they restart services or reboot, exactly \
               while a critical section driven by a GPIO line runs. This \
               recipe installs the static musl binary the project releases for \
               aarch64 and armv7: every Yocto release from kirkstone on, \
               balenaOS included, without a Rust toolchain."
AUTHOR = "The updlock developers"
HOMEPAGE = "https://github.com/updlock/updlock"
BUGTRACKER = "https://github.com/updlock/updlock/issues"
SECTION = "console/utils"
LICENSE = "MIT | Apache-2.0"
# A release binary comes without its source tree: the texts are the common
# ones, whose checksums are those of oe-core's copies.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
                    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"
CVE_PRODUCT = "updlock"

# Where the release binaries are: override it to serve them from a mirror of
# your own (the sha256 values below still have to match).
UPDLOCK_RELEASES ?= "https://github.com/updlock/updlock/releases/download/v${PV}"

# One binary per architecture (arm is TARGET_ARCH for 32-bit ARM).; yocto/release writes the sha256 values from
# dist/SHA256SUMS, and CI checks they are those of this commit's build.
SRC_URI:append:aarch64 = " ${UPDLOCK_RELEASES}/updlock-aarch64;name=aarch64;downloadfilename=updlock-${PV}-aarch64"
SRC_URI:append:arm = " ${UPDLOCK_RELEASES}/updlock-armv7;name=armv7;downloadfilename=updlock-${PV}-armv7"
SRC_URI[aarch64.sha256sum] = "ea5682f1c81a922ef5dfbe79384dd4fc2ec4031c5cf3357d028fbbcadc9a01a4"
SRC_URI[armv7.sha256sum] = "ae534d47a96c9568709d3ffa5a5e0e2896d266328e652fbe238e564920ab83c4"

require updlock-systemd.inc

S = "${UPDLOCK_FILES}"

UPDLOCK_BINARY:aarch64 = "updlock-${PV}-aarch64"
UPDLOCK_BINARY:arm = "updlock-${PV}-armv7"

# Only what is shipped: aarch64, and 32-bit ARM from ARMv7 on.
require updlock-bin-arch.inc
COMPATIBLE_HOST = "(aarch64|arm).*-linux.*"
# Anonymous python: a recipe can only be skipped while it is parsed.
# nooelint: oelint.task.noanonpython
python () {
    if not updlock_bin_arch(d):
        raise bb.parse.SkipRecipe("no updlock release binary for TARGET_ARCH %s with TUNE_FEATURES '%s' (aarch64 or ARMv7 and later only)" % (d.getVar('TARGET_ARCH'), d.getVar('TUNE_FEATURES')))
}

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -D -m 0755 ${UPDLOCK_FILES}/${UPDLOCK_BINARY} ${D}${bindir}/updlock
}

# The release binary comes stripped by its own build: do_package finds
# nothing to strip or split off, and its already-stripped QA check would
# fail the build on a fact, not a fault. That is the only check skipped:
# "ldflags" (GNU_HASH) looks at dynamic symbols, and a static binary with
# no dynamic section has none.
# nooelint: oelint.vars.insaneskip
INSANE_SKIP:${PN} = "already-stripped"

# Installs what the from-source recipe installs: either, never both.
RPROVIDES:${PN} = "updlock"
RCONFLICTS:${PN} = "updlock"
RREPLACES:${PN} = "updlock"
