# Stub of oe-core's systemd.bbclass: only the variables a recipe reads or
# sets. The real class turns SYSTEMD_SERVICE:<pkg> into enable/disable
# postinsts at packaging time (and fails there if a unit was not installed);
# none of that can happen at parse time.
SYSTEMD_PACKAGES ?= "${PN}"
SYSTEMD_AUTO_ENABLE ??= "enable"
