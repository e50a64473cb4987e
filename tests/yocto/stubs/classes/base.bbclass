# Stub of oe-core's base.bbclass: inherited into every recipe (and the
# configuration) by bitbake itself. It holds the helpers bitbake.conf calls,
# the standard task chain with empty bodies (nothing is ever built or fetched
# at parse time), and the parse-time checks of oe-core that decide whether a
# recipe is usable at all: a recipe that does not fit the machine/host/distro
# raises bb.parse.SkipRecipe, which bb.py reports as {"skipped": ...}.

# PN without a class variant's decoration (foo-native -> foo,
# nativesdk-foo -> foo): BPN in bitbake.conf.
def stub_base_pn(d):
    pn = d.getVar('PN')

    # Not an oe-core check, a stub one: a package variable in the old
    # override syntax (RDEPENDS_${PN} rather than RDEPENDS:${PN}) parses
    # fine and is then silently ignored by a modern bitbake. (Old-syntax
    # operations such as _append are already fatal in bitbake itself.)
    pkgvars = ('RDEPENDS RRECOMMENDS RSUGGESTS RCONFLICTS RPROVIDES RREPLACES '
               'FILES ALLOW_EMPTY CONFFILES INSANE_SKIP SUMMARY DESCRIPTION LICENSE '
               'SYSTEMD_SERVICE SYSTEMD_AUTO_ENABLE INITSCRIPT_NAME INITSCRIPT_PARAMS '
               'USERADD_PARAM GROUPADD_PARAM pkg_preinst pkg_postinst pkg_prerm pkg_postrm').split()
    for pkg in (d.getVar('PACKAGES') or '').split():
        for var in pkgvars:
            if d.getVar('%s_%s' % (var, pkg), False) is not None:
                bb.fatal('%s_%s uses the old override syntax: write %s:%s' % (var, pkg, var, pkg))
    if pn.startswith('nativesdk-'):
        pn = pn[len('nativesdk-'):]
    for suffix in (d.getVar('SPECIAL_PKGSUFFIX') or '').split():
        if pn.endswith(suffix):
            return pn[:-len(suffix)]
    return pn

# FILESPATH in bitbake.conf: every directory of FILESEXTRAPATHS and then of
# `dirs`, each tried below every FILESOVERRIDES entry first (the last
# override is the most specific, so it is searched first) and plain last.
def stub_filespath(dirs, d):
    import os
    extra = (d.getVar('FILESEXTRAPATHS') or '').replace('__default:', '')
    paths = [p for p in extra.split(':') + dirs if p]
    overrides = [o for o in (d.getVar('FILESOVERRIDES') or '').split(':') if o]
    result = []
    for o in reversed([''] + overrides):
        result.extend(os.path.join(p, o) for p in paths)
    return ':'.join(result)

# The task chain a recipe (and the cargo stub) hooks into. Bodies are empty:
# tasks never run here, but `do_install:append`, `addtask ... after do_patch`
# and EXPORT_FUNCTIONS need them to exist.
do_fetch() {
	:
}
do_unpack() {
	:
}
do_patch() {
	:
}
do_configure() {
	:
}
do_compile() {
	:
}
do_install() {
	:
}
do_build() {
	:
}
addtask fetch
addtask unpack after do_fetch
addtask patch after do_unpack
addtask configure after do_patch
addtask compile after do_configure
addtask install after do_compile
addtask build after do_install
do_build[noexec] = "1"

python __anonymous () {
    import re

    pn = d.getVar('PN')

    # Not an oe-core check, a stub one: a package variable in the old
    # override syntax (RDEPENDS_${PN} rather than RDEPENDS:${PN}) parses
    # fine and is then silently ignored by a modern bitbake. (Old-syntax
    # operations such as _append are already fatal in bitbake itself.)
    pkgvars = ('RDEPENDS RRECOMMENDS RSUGGESTS RCONFLICTS RPROVIDES RREPLACES '
               'FILES ALLOW_EMPTY CONFFILES INSANE_SKIP SUMMARY DESCRIPTION LICENSE '
               'SYSTEMD_SERVICE SYSTEMD_AUTO_ENABLE INITSCRIPT_NAME INITSCRIPT_PARAMS '
               'USERADD_PARAM GROUPADD_PARAM pkg_preinst pkg_postinst pkg_prerm pkg_postrm').split()
    for pkg in (d.getVar('PACKAGES') or '').split():
        for var in pkgvars:
            if d.getVar('%s_%s' % (var, pkg), False) is not None:
                bb.fatal('%s_%s uses the old override syntax: write %s:%s' % (var, pkg, var, pkg))

    # A recipe must name its licence (oe-core fatals the same way).
    if d.getVar('LICENSE') in (None, '', 'INVALID') and pn != 'defaultpkgname':
        bb.fatal('This recipe does not have the LICENSE field set (%s)' % pn)

    # SKIP_RECIPE[pn] = "reason": the distro's way to switch a recipe off.
    reason = d.getVarFlag('SKIP_RECIPE', pn)
    if reason:
        raise bb.parse.SkipRecipe('Recipe will be skipped because: %s' % reason)

    # COMPATIBLE_HOST is a regular expression matched against the start of
    # HOST_SYS (e.g. "aarch64-oe-linux").
    need_host = d.getVar('COMPATIBLE_HOST')
    if need_host:
        this_host = d.getVar('HOST_SYS')
        if not re.match(need_host, this_host):
            raise bb.parse.SkipRecipe('incompatible with host %s (not in COMPATIBLE_HOST)' % this_host)

    # COMPATIBLE_MACHINE is a regular expression that must match (the start
    # of) one MACHINEOVERRIDES entry.
    need_machine = d.getVar('COMPATIBLE_MACHINE')
    if need_machine:
        machines = [m for m in (d.getVar('MACHINEOVERRIDES') or '').split(':') if m]
        if not any(re.match(need_machine, m) for m in machines):
            raise bb.parse.SkipRecipe('incompatible with machine %s (not in COMPATIBLE_MACHINE)' % d.getVar('MACHINE'))
}
