# balenaOS (meta-balena's balena-common layer is in the build): put the
# static updlock binary into the host OS of every balena image. Read only
# when balena-common is there (BBFILES_DYNAMIC in conf/layer.conf), and only
# for the balena-os distro, so the layer stays usable elsewhere.
# balena-image.bb sets IMAGE_INSTALL with '=', which drops an
# IMAGE_INSTALL += from local.conf; the packagegroup is what every image
# really installs.
# Machines no release binary fits (x86, ARMv6) get nothing.
require recipes-support/updlock/updlock-bin-arch.inc
RDEPENDS:${PN}:append:balena-os = " ${@'updlock-bin' if updlock_bin_arch(d) else ''}"
