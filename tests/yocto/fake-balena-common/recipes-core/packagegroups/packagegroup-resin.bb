# A stand-in for meta-balena's packagegroup-resin.bb: what the real one does
# that matters to a bbappend (machine-specific, not allarch; a few packages).
SUMMARY = "Stand-in for balenaOS's packagegroup-resin"
LICENSE = "Apache-2.0"
PACKAGE_ARCH = "${TUNE_PKGARCH}"
RDEPENDS:${PN} += "dosfstools balena-supervisor"
