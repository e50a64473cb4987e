#!/usr/bin/env python3
"""The checks of the Yocto layer yocto/meta-updlock (run by tests/yocto/check).

Each check prints `ok NAME` or `FAIL NAME: why`; all of them run, and the
last line is `yocto: N passed, N failed` (tests/run counts it). Exit 1 if
any failed.

    target/yocto-venv/bin/python tests/yocto/check.py [--only NAME...] [--offline]

Needs dist/ built from this tree (tests/build-dist) and, for the crate
fetch, crates.io (or target/yocto-downloads filled by an earlier run with
--offline).
"""

import argparse
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
LAYER = ROOT / "yocto/meta-updlock"
RECIPES = LAYER / "recipes-support/updlock"
BBAPPEND = LAYER / "dynamic-layers/balena-common/recipes-core/packagegroups/packagegroup-resin.bbappend"
STUBS = ROOT / "tests/yocto/stubs"
# A stand-in for meta-balena's packagegroup-resin.bb, for the bbappend.
FAKE_BALENA = ROOT / "tests/yocto/fake-balena-common"
VENV_BIN = pathlib.Path(sys.executable).parent
BB_PY = ROOT / "tests/yocto/bb.py"
DOWNLOADS = ROOT / "target/yocto-downloads"
OFFLINE = False

# The machines the recipes are parsed for: TARGET_ARCH and TUNE_FEATURES
# as oe-core's tune files set them for these Raspberry Pi machines.
MACHINES = {
    "raspberrypi4-64": {"TARGET_ARCH": "aarch64", "TUNE_FEATURES": "aarch64 crc cortexa72"},
    "raspberrypi3": {"TARGET_ARCH": "arm", "TUNE_FEATURES": "arm vfp cortexa7 neon vfpv4 thumb callconvention-hard armv7ve"},
    "raspberrypi0-wifi": {"TARGET_ARCH": "arm", "TUNE_FEATURES": "arm armv6 vfp arm1176jzfs callconvention-hard"},
    "genericx86-64": {"TARGET_ARCH": "x86_64", "TUNE_FEATURES": "m64 corei7"},
}

results = []


def check(name):
    """Registers a check: a function that raises AssertionError (or
    returns a short note) and is run by main()."""

    def register(fn):
        results.append((name, fn))
        return fn

    return register


class Skipped(Exception):
    pass


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def only(paths, pattern):
    found = sorted(p for p in paths if re.fullmatch(pattern, p.name))
    assert len(found) == 1, f"expected one file matching {pattern}, found {[p.name for p in found]}"
    return found[0]


def workspace_version():
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


def bin_recipe():
    return only(RECIPES.glob("*.bb"), r"updlock-bin_.*\.bb")


def src_recipe():
    return only(RECIPES.glob("*.bb"), r"updlock_.*\.bb")


def expand(recipe, variables, settings=None, bbappends=(), layers=(LAYER,), unpackdir=True, any_recipe=False, emit=()):
    """Parses RECIPE with bitbake's parser (tests/yocto/bb.py) and returns
    {VAR: value}, or {"skipped": reason} when the recipe skipped itself."""
    cmd = [str(VENV_BIN / "python"), str(BB_PY), "expand"]
    for layer in layers:
        cmd += ["--layer", str(layer)]
    values = {"TMPDIR": "/tmp/updlock-bb-tmp"}
    values.update(settings or {})
    if not unpackdir:
        cmd += ["--no-unpackdir"]
    for key, value in values.items():
        cmd += ["--set", f"{key}={value}"]
    if any_recipe:
        cmd += ["--any-recipe"]
    for spec in emit:
        cmd += ["--emit", spec]
    for append in bbappends:
        cmd += ["--bbappend", str(append)]
    cmd += [str(recipe), *variables]
    proc = run(cmd)
    if proc.returncode == 3:
        return json.loads(proc.stdout)
    assert proc.returncode == 0, f"bb.py expand {recipe.name} failed ({proc.returncode}): {proc.stderr.strip()}"
    return json.loads(proc.stdout)


def machine(name, **extra):
    settings = {"MACHINE": name, "MACHINEOVERRIDES": name, **MACHINES[name]}
    settings.update(extra)
    return settings


def dist_sums():
    sums = {}
    path = ROOT / "dist/SHA256SUMS"
    assert path.exists(), "no dist/SHA256SUMS: run tests/build-dist first"
    for line in path.read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    return sums


def srcrev():
    m = re.search(r'^SRCREV = "([0-9a-f]{40})"$', src_recipe().read_text(), re.M)
    assert m, f"{src_recipe().name}: no SRCREV of 40 hex digits"
    return m.group(1)


# --- Cargo.lock: something scarthgap's cargo 1.75 builds -----------------------


@check("lock-is-v3")
def _():
    text = (ROOT / "Cargo.lock").read_text()
    m = re.search(r"^version = (\d+)$", text, re.M)
    assert m and m.group(1) == "3", f"Cargo.lock is format v{m.group(1) if m else '?'}: cargo 1.75 reads v3 at most"
    return "Cargo.lock format v3"


@check("lock-builds-with-msrv")
def _():
    with open(ROOT / "firmware/Cargo.toml", "rb") as f:
        msrv = tuple(int(x) for x in tomllib.load(f)["package"]["rust-version"].split("."))
    proc = run(["cargo", "metadata", "--format-version", "1", "--locked", "--offline"], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.strip()
    bad = []
    packages = json.loads(proc.stdout)["packages"]
    for p in packages:
        rv = p.get("rust_version")
        if rv and tuple(int(x) for x in rv.split(".")[:2]) > msrv[:2]:
            bad.append(f"{p['name']} {p['version']} needs Rust {rv}")
        if p["edition"] not in ("2015", "2018", "2021"):
            bad.append(f"{p['name']} {p['version']} is edition {p['edition']}")
    assert not bad, f"Cargo.lock has crates Rust {'.'.join(map(str, msrv))} cannot build: " + "; ".join(bad)
    return f"{len(packages)} packages, none needs more than Rust {'.'.join(map(str, msrv))} or edition 2021"


@check("crates-inc-matches-lock")
def _():
    proc = run([sys.executable, str(ROOT / "yocto/crates-inc"), "--check"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr).strip()
    return proc.stdout.strip().removeprefix("crates-inc: ")


# --- oelint-adv ----------------------------------------------------------------

# Findings the generated updlock-crates.inc is allowed: the text
# `bitbake -c update_crates` writes starts with 'SRC_URI += " \', which the
# spacing rules dislike. Kept as generated, so that update_crates and
# yocto/crates-inc give the same file.
GENERATED_OK = re.compile(r".*/updlock-crates\.inc:4:\w+:oelint\.vars\.(inconspaces|notneededspace):")


def oelint(release, files):
    env = dict(os.environ, OELINT_CONFIG=str(LAYER / ".oelint.cfg"))
    proc = run(
        [str(VENV_BIN / "oelint-adv"), "--quiet", "--release", release, *map(str, files)],
        env=env,
        cwd=LAYER,
    )
    findings = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if re.match(r"^/.*:\d+:(error|warning|info):", line) and not GENERATED_OK.match(line)
    ]
    return proc.returncode, findings


def layer_files():
    files = sorted(
        p for p in LAYER.rglob("*") if p.suffix in (".bb", ".bbappend", ".inc") or p.name == "layer.conf"
    )
    assert files, "no layer files found"
    return files


@check("oelint")
def _():
    # Each file at the oldest release it claims: the prebuilt recipe and all
    # that is not from-source only at kirkstone, the from-source recipe at
    # scarthgap (the first release it builds on).
    files = layer_files()
    source = [src_recipe(), RECIPES / "updlock-crates.inc"]
    rest = [f for f in files if f not in source]
    failures = []
    for release, group in (("kirkstone", rest), ("scarthgap", source)):
        _, findings = oelint(release, group)
        failures += findings
    assert not failures, f"{len(failures)} finding(s):\n  " + "\n  ".join(failures)
    return f"{len(files)} files ({', '.join(f.name for f in files)}), no findings"


@check("oelint-catches-a-fault")
def _():
    # oelint-adv exits 0 having checked nothing when it is handed the wrong
    # thing: prove this invocation lints by planting an old-style override.
    with tempfile.TemporaryDirectory() as tmp:
        bad = pathlib.Path(tmp) / bin_recipe().name
        text = bin_recipe().read_text().replace("RPROVIDES:${PN}", "RPROVIDES_${PN}")
        bad.write_text(text)
        for inc in RECIPES.glob("*.inc"):
            shutil.copy(inc, tmp)
        rc, findings = oelint("kirkstone", [bad])
        assert rc != 0 and any("RPROVIDES" in f or "underscores" in f or "override" in f.lower() for f in findings), (
            f"oelint-adv did not flag RPROVIDES_${{PN}} (exit {rc}): {findings}"
        )
    return "RPROVIDES_${PN} flagged"


# --- bitbake's parser -----------------------------------------------------------


@check("layer-conf")
def _():
    proc = run([str(VENV_BIN / "python"), str(BB_PY), "layer", str(LAYER)])
    assert proc.returncode == 0, proc.stderr.strip()
    info = json.loads(proc.stdout)
    coll = info["collections"]["updlock"] if "collections" in info else info["updlock"]
    compat = coll["LAYERSERIES_COMPAT"].split()
    for release in ("kirkstone", "scarthgap", "styhead", "walnascar", "whinlatter", "wrynose"):
        assert release in compat, f"LAYERSERIES_COMPAT_updlock lacks {release}: {compat}"
    assert coll["LAYERDEPENDS"].split() == ["core"], f"LAYERDEPENDS_updlock is {coll['LAYERDEPENDS']!r}, not 'core'"
    dynamic = info.get("BBFILES_DYNAMIC", coll.get("BBFILES_DYNAMIC", ""))
    assert "balena-common:" in dynamic and "dynamic-layers/balena-common" in dynamic, f"BBFILES_DYNAMIC: {dynamic!r}"
    return f"collection updlock, priority {coll['BBFILE_PRIORITY']}, compat {' '.join(compat)}"


@check("bin-recipe-aarch64")
def _():
    version = workspace_version()
    recipe = bin_recipe()
    v = expand(
        recipe,
        ["PN", "PV", "LICENSE", "LIC_FILES_CHKSUM", "SRC_URI", "SRC_URI[aarch64.sha256sum]", "SYSTEMD_SERVICE:updlock-bin",
         "SYSTEMD_AUTO_ENABLE:updlock-bin", "RPROVIDES:updlock-bin", "INSANE_SKIP:updlock-bin", "S"],
        machine("raspberrypi4-64"),
    )
    assert "skipped" not in v, f"skipped on raspberrypi4-64: {v['skipped']}"
    assert v["PN"] == "updlock-bin", v["PN"]
    assert v["PV"] == version, f"PV {v['PV']} but Cargo.toml says {version}"
    assert v["LICENSE"] == "MIT | Apache-2.0", v["LICENSE"]
    assert "/MIT;md5=" in v["LIC_FILES_CHKSUM"] and "/Apache-2.0;md5=" in v["LIC_FILES_CHKSUM"], v["LIC_FILES_CHKSUM"]
    uris = v["SRC_URI"].split()
    url = f"https://github.com/updlock/updlock/releases/download/v{version}/updlock-aarch64;name=aarch64;downloadfilename=updlock-{version}-aarch64"
    assert url in uris, f"SRC_URI lacks {url}: {uris}"
    assert not any("armv7" in u for u in uris), f"the armv7 binary is fetched on aarch64: {uris}"
    assert "file://updlock-watch@.service" in uris and "file://updlock.default" in uris, uris
    assert v["SYSTEMD_SERVICE:updlock-bin"] == "updlock-watch@.service", v["SYSTEMD_SERVICE:updlock-bin"]
    assert v["SYSTEMD_AUTO_ENABLE:updlock-bin"] == "disable", v["SYSTEMD_AUTO_ENABLE:updlock-bin"]
    assert v["RPROVIDES:updlock-bin"] == "updlock", v["RPROVIDES:updlock-bin"]
    assert v["INSANE_SKIP:updlock-bin"].split() == ["already-stripped"], v["INSANE_SKIP:updlock-bin"]
    return f"PN {v['PN']}, PV {v['PV']}, SRC_URI {uris[-1].split(';')[0].rsplit('/', 1)[1]}"


@check("bin-recipe-armv7")
def _():
    version = workspace_version()
    v = expand(bin_recipe(), ["SRC_URI", "SRC_URI[armv7.sha256sum]"], machine("raspberrypi3"))
    assert "skipped" not in v, f"skipped on raspberrypi3: {v['skipped']}"
    uris = v["SRC_URI"].split()
    url = f"https://github.com/updlock/updlock/releases/download/v{version}/updlock-armv7;name=armv7;downloadfilename=updlock-{version}-armv7"
    assert url in uris, f"SRC_URI lacks {url}: {uris}"
    assert not any("aarch64" in u for u in uris), uris
    return "armv7 binary on an ARMv7 tune"


@check("bin-recipe-refuses-armv6-and-x86")
def _():
    notes = []
    for name in ("raspberrypi0-wifi", "genericx86-64"):
        v = expand(bin_recipe(), ["PN"], machine(name))
        assert "skipped" in v, f"{name}: parsed instead of skipped: {v}"
        notes.append(f"{name}: {v['skipped']}")
    return "; ".join(notes)


@check("bin-sha256-is-this-commits-build")
def _():
    sums = dist_sums()
    text = bin_recipe().read_text()
    for arch in ("aarch64", "armv7"):
        m = re.search(rf'^SRC_URI\[{arch}\.sha256sum\] = "([0-9a-f]{{64}})"$', text, re.M)
        assert m, f"{bin_recipe().name}: no SRC_URI[{arch}.sha256sum]"
        want = sums[f"updlock-{arch}"]
        assert m.group(1) == want, (
            f"SRC_URI[{arch}.sha256sum] is {m.group(1)}, this tree builds {want}: run yocto/release"
        )
    return f"aarch64 {sums['updlock-aarch64'][:12]}…, armv7 {sums['updlock-armv7'][:12]}…"


@check("watch-units-enabled-by-UPDLOCK_WATCH")
def _():
    v = expand(
        bin_recipe(),
        ["SYSTEMD_SERVICE:updlock-bin", "SYSTEMD_AUTO_ENABLE:updlock-bin"],
        machine("raspberrypi4-64", UPDLOCK_WATCH="GPIO27 GPIO22"),
    )
    want = "updlock-watch@GPIO27.service updlock-watch@GPIO22.service"
    assert v["SYSTEMD_SERVICE:updlock-bin"] == want, v["SYSTEMD_SERVICE:updlock-bin"]
    assert v["SYSTEMD_AUTO_ENABLE:updlock-bin"] == "enable", v["SYSTEMD_AUTO_ENABLE:updlock-bin"]
    return want


@check("S-before-and-after-UNPACKDIR")
def _():
    with_unpack = expand(src_recipe(), ["S", "UNPACKDIR"], machine("raspberrypi4-64", RUSTVERSION="1.75%"))
    without = expand(src_recipe(), ["S", "WORKDIR"], machine("raspberrypi4-64", RUSTVERSION="1.75%"), unpackdir=False)
    assert with_unpack["S"] == with_unpack["UNPACKDIR"] + "/git", with_unpack
    assert without["S"] == without["WORKDIR"] + "/git", without
    return f"S = {with_unpack['S']} / {without['S']}"


@check("source-recipe")
def _():
    version = workspace_version()
    v = expand(
        src_recipe(),
        ["PN", "PV", "LICENSE", "LIC_FILES_CHKSUM", "SRC_URI", "SRCREV", "CARGO_SRC_DIR", "SYSTEMD_SERVICE:updlock", "RCONFLICTS:updlock"],
        machine("raspberrypi4-64", RUSTVERSION="1.75%"),
    )
    assert "skipped" not in v, f"skipped with Rust 1.75: {v['skipped']}"
    assert v["PN"] == "updlock" and v["PV"] == version, (v["PN"], v["PV"])
    assert v["LICENSE"] == "MIT | Apache-2.0", v["LICENSE"]
    for entry in v["LIC_FILES_CHKSUM"].split():
        m = re.fullmatch(r"file://([^;]+);md5=([0-9a-f]{32})", entry)
        assert m, f"LIC_FILES_CHKSUM entry {entry!r}"
        digest = hashlib.md5((ROOT / m.group(1)).read_bytes()).hexdigest()
        assert digest == m.group(2), f"{m.group(1)}: md5 {digest}, the recipe says {m.group(2)}"
    uris = v["SRC_URI"].split()
    assert uris[0].startswith("git://github.com/updlock/updlock.git;"), uris[0]
    crates = [u for u in uris if u.startswith("crate://crates.io/")]
    lock_crates = (RECIPES / "updlock-crates.inc").read_text().count("crate://crates.io/")
    assert len(crates) == lock_crates and crates, f"{len(crates)} crate:// entries in SRC_URI, the .inc has {lock_crates}"
    assert v["SYSTEMD_SERVICE:updlock"] == "updlock-watch@.service", v["SYSTEMD_SERVICE:updlock"]
    assert v["RCONFLICTS:updlock"] == "updlock-bin", v["RCONFLICTS:updlock"]
    assert v["CARGO_SRC_DIR"] == "firmware", v["CARGO_SRC_DIR"]
    return f"PN {v['PN']}, PV {v['PV']}, {len(crates)} crates, licence md5s match"


@check("source-recipe-refuses-old-rust")
def _():
    notes = []
    for rust in ("1.59%", "1.62.1%"):
        v = expand(src_recipe(), ["PN"], machine("raspberrypi4-64", RUSTVERSION=rust))
        assert "skipped" in v, f"RUSTVERSION {rust}: parsed instead of skipped"
        notes.append(v["skipped"])
    return notes[0]


@check("source-recipe-static-on-musl")
def _():
    musl = expand(src_recipe(), ["RUSTFLAGS"], machine("raspberrypi4-64", RUSTVERSION="1.94%", TCLIBC="musl"))
    glibc = expand(src_recipe(), ["RUSTFLAGS"], machine("raspberrypi4-64", RUSTVERSION="1.94%", TCLIBC="glibc"))
    assert "+crt-static" in musl["RUSTFLAGS"], musl
    assert "+crt-static" not in glibc["RUSTFLAGS"], glibc
    return "+crt-static with TCLIBC=musl only"


@check("balena-bbappend")
def _():
    # Applied through BBFILES_DYNAMIC only when a balena-common collection
    # is in the build (here the stand-in layer), and then only for the
    # balena-os distro on a machine a release binary fits.
    recipe = FAKE_BALENA / "recipes-core/packagegroups/packagegroup-resin.bb"
    var = "RDEPENDS:packagegroup-resin"

    def rdepends(name, distro, layers=(LAYER, FAKE_BALENA)):
        v = expand(recipe, [var, "__BBAPPEND"], machine(name, DISTRO=distro, DISTROOVERRIDES=distro), layers=layers)
        assert "skipped" not in v, v
        return v[var].split(), v["__BBAPPEND"] or ""

    deps, appends = rdepends("raspberrypi4-64", "balena-os")
    assert "updlock-bin" in deps and BBAPPEND.name in appends, (deps, appends)
    assert "updlock-bin" in rdepends("raspberrypi3", "balena-os")[0]
    assert "updlock-bin" not in rdepends("raspberrypi0-wifi", "balena-os")[0]
    assert "updlock-bin" not in rdepends("raspberrypi4-64", "poky")[0]
    # Without balena-common the bbappend is not read at all.
    v = expand(recipe, [var, "__BBAPPEND"], machine("raspberrypi4-64", DISTRO="balena-os", DISTROOVERRIDES="balena-os"), any_recipe=True)
    assert BBAPPEND.name not in (v["__BBAPPEND"] or ""), f"applied without balena-common: {v['__BBAPPEND']}"
    assert "updlock-bin" not in v[var].split(), v
    return "balena-os aarch64/armv7: updlock-bin added; ARMv6, poky, no balena-common: not"


def do_install(extra, want_settings):
    # The recipe's do_install as bitbake would run it (run.do_install,
    # emitted by bitbake's own code), on this tree's binary under the name
    # the fetcher gives it, and the layer's files as do_unpack would place
    # them.
    version = workspace_version()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        sources, image = tmp / "sources", tmp / "image"
        sources.mkdir()
        shutil.copy(ROOT / "dist/updlock-aarch64", sources / f"updlock-{version}-aarch64")
        for f in (RECIPES / "files").iterdir():
            shutil.copy(f, sources)
        script = tmp / "run.do_install"
        expand(
            bin_recipe(),
            ["PN"],
            machine("raspberrypi4-64", D=str(image), UNPACKDIR=str(sources), bindir="/usr/bin",
                    systemd_system_unitdir="/usr/lib/systemd/system", sysconfdir="/etc", **extra),
            emit=[f"do_install={script}"],
        )
        proc = run(["sh", str(script)], cwd=tmp)
        assert proc.returncode == 0, f"do_install failed: {proc.stderr.strip()}"
        installed = sorted(str(p.relative_to(image)) for p in image.rglob("*") if p.is_file())
        want = ["etc/default/updlock", "usr/bin/updlock", "usr/lib/systemd/system/updlock-watch@.service"]
        assert installed == want, f"installed {installed}, expected {want}"
        binary = image / "usr/bin/updlock"
        assert binary.read_bytes() == (ROOT / "dist/updlock-aarch64").read_bytes(), "usr/bin/updlock is not dist/updlock-aarch64"
        assert binary.stat().st_mode & 0o777 == 0o755, oct(binary.stat().st_mode)
        unit = (image / "usr/lib/systemd/system/updlock-watch@.service").read_text()
        assert "@" + "BINDIR@" not in unit, "@BINDIR@ left in the unit"
        exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
        assert exec_start.startswith("/usr/bin/updlock "), exec_start
        settings = [l for l in (image / "etc/default/updlock").read_text().splitlines() if l and not l.startswith("#")]
        assert settings == want_settings, f"/etc/default/updlock sets {settings}, not {want_settings}"
    return f"installed {', '.join(want)}; ExecStart={exec_start}; settings {settings}"


@check("bin-recipe-do_install")
def _():
    return do_install({}, ["UPDLOCK_HOST=yes"])


@check("bin-recipe-do_install-with-UPDLOCK_SETTINGS")
def _():
    want = ["UPDLOCK_LOCK=/run/updlock.lock", "UPDLOCK_GPIO=GPIO17"]
    return do_install({"UPDLOCK_SETTINGS": " ".join(want)}, want)


def git(*args):
    return run(["git", "-C", str(ROOT), *args])


@check("srcrev-is-the-release")
def _():
    rev = srcrev()
    version = workspace_version()
    proc = git("cat-file", "-e", f"{rev}^{{commit}}")
    assert proc.returncode == 0, f"SRCREV {rev} is not a commit of this repository (a shallow clone?)"
    toml = tomllib.loads(git("show", f"{rev}:Cargo.toml").stdout)
    at = toml["workspace"]["package"]["version"]
    assert at == version, f"SRCREV {rev[:12]} is version {at}, the recipe is {version}: run yocto/release --srcrev"
    lock = git("show", f"{rev}:Cargo.lock").stdout
    assert lock == (ROOT / "Cargo.lock").read_text(), (
        f"SRCREV {rev[:12]} has another Cargo.lock than this tree, which updlock-crates.inc lists: cut a release"
    )
    return f"{rev[:12]}: version {at}, same Cargo.lock"


@check("crates-fetch-and-frozen-build")
def _():
    # bitbake's crate fetcher downloads every crate:// entry of the recipe
    # and verifies its sha256; then the release commit (as bitbake's git
    # fetcher would unpack it) is built by cargo --frozen against only those
    # crates, offline: what do_compile of the recipe does.
    rev = srcrev()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        cmd = [str(VENV_BIN / "python"), str(BB_PY), "fetch", "--layer", str(LAYER), "--set", "RUSTVERSION=1.75%",
               "--set", "TARGET_ARCH=aarch64", "--downloads", str(DOWNLOADS), "--unpack", str(tmp / "unpack")]
        if OFFLINE:
            cmd.append("--offline")
        proc = run(cmd + [str(src_recipe())])
        assert proc.returncode == 0, f"bitbake's fetch failed: {proc.stderr.strip()[-2000:]}"
        fetched = json.loads(proc.stdout)
        src = tmp / "git"
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True)
        assert archive.returncode == 0, archive.stderr.decode()
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
        home = tmp / "cargo-home"
        home.mkdir()
        (home / "config.toml").write_text(
            '[source.crates-io]\nreplace-with = "bitbake"\n'
            f'[source.bitbake]\ndirectory = "{fetched["vendor_dir"]}"\n'
        )
        env = dict(os.environ, CARGO_HOME=str(home))
        build = run(
            ["cargo", "build", "--frozen", "--offline", "--release", "-p", "updlock",
             "--target-dir", str(ROOT / "target/yocto-build")],
            cwd=src / "firmware", env=env,
        )
        assert build.returncode == 0, f"cargo build --frozen failed: {build.stderr.strip()[-2000:]}"
        binary = ROOT / "target/yocto-build/release/updlock"
        out = run([str(binary), "--version"])
        assert out.returncode == 0 and out.stdout.startswith("updlock "), (out.stdout, out.stderr)
    return (f"{fetched['verified']} of {fetched['crates']} crates verified by bitbake's fetcher; "
            f"{rev[:12]} built --frozen --offline: {out.stdout.strip()}")


@check("kas-file")
def _():
    import yaml
    import jsonschema
    from kas.configschema import CONFIGSCHEMA

    path = LAYER / "kas/raspberrypi4-64.yml"
    config = yaml.safe_load(path.read_text())
    jsonschema.validate(config, CONFIGSCHEMA)
    layers = config["repos"]["updlock"]["layers"]
    for layer in layers:
        assert (ROOT / layer / "conf/layer.conf").exists(), f"kas names layer {layer}, which is not in this repository"
    return f"{path.name}: valid for kas {__import__('kas').__version__}, machine {config['machine']}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--offline", action="store_true", help="fetch crates only from target/yocto-downloads")
    args = parser.parse_args()
    global OFFLINE
    OFFLINE = args.offline
    passed = failed = 0
    for name, fn in results:
        if args.only and name not in args.only:
            continue
        try:
            note = fn()
        except AssertionError as e:
            failed += 1
            print(f"FAIL {name}: {e}")
        except Exception as e:  # a check that crashed counts as failed
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        else:
            passed += 1
            print(f"ok   {name}" + (f": {note}" if note else ""))
        sys.stdout.flush()
    print(f"yocto: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
