"""Parse and fetch with bitbake's own library, without poky/oe-core.

Run with the venv that tests/yocto/setup builds:

    target/yocto-venv/bin/python tests/yocto/bb.py expand [options] RECIPE VAR...
    target/yocto-venv/bin/python tests/yocto/bb.py layer [options] LAYERDIR
    target/yocto-venv/bin/python tests/yocto/bb.py fetch [options] (--inc FILE | RECIPE)

The venv holds the PyPI wheel bitbake-setup, which carries bitbake's whole
`bb` package. What bitbake normally gets from oe-core (conf/bitbake.conf,
base.bbclass, the cargo classes) and the `hashserv` module the wheel lacks
come from tests/yocto/stubs/, which poses as the "core" layer. The parser,
the datastore, override handling, inherit/require, anonymous python and the
fetcher (crate:// entries, sha256 checks, unpack layout) are bitbake's own.

This drives bitbake's internal API, which changes between releases: the
version is pinned in tests/yocto/setup. The configuration steps below follow
bb/cookerdata.py (parseConfigurationFiles) and bb/cooker.py (collections,
BBFILES, bbappends) of bitbake 2.19.

Output (stdout, JSON; messages go to stderr):
  expand  {"VAR": "expanded value" or null, ...}, or {"skipped": "reason"}
  layer   {"layer", "collections": {NAME: {"BBFILE_PATTERN", "BBFILE_PRIORITY",
          "LAYERDEPENDS", "LAYERRECOMMENDS", "LAYERSERIES_COMPAT",
          "LAYERVERSION"}}, "LAYERSERIES_CORENAMES", "BBPATH": [dirs],
          "BBFILES", "BBFILES_DYNAMIC" (strings), "dynamic": [{"entry",
          "active"}], "recipes": [files], "bbappends": [files]}
  fetch   {"crates", "downloaded", "verified", "download_seconds",
          "unpack_seconds", "vendor_dir",
          "vendored": ["NAME-VERSION", ...]} (+ "source_dir" when a crate is
          the recipe's own source)

Exit codes: 0 done; 1 parse, layer or fetch error (bitbake's message on
stderr); 2 bad usage; 3 the recipe skipped itself (bb.parse.SkipRecipe).
"""

import argparse
import contextlib
import glob
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STUBS = os.path.join(HERE, "stubs")
# Python puts this script's directory first on sys.path, where `import bb`
# would find this very file (bb.py) instead of bitbake's package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
# The stub `hashserv` package must be importable before `bb.parse` is: it
# imports bb.siggen, which imports hashserv at load time.
sys.path.insert(0, os.path.join(STUBS, "lib"))

try:
    import bb
    import bb.codeparser
    import bb.data
    import bb.data_smart
    import bb.event
    import bb.fetch2
    import bb.parse
    import bb.utils
except ImportError as exc:
    sys.exit(
        "bb.py: cannot import bitbake's bb library (%s): run tests/yocto/setup "
        "and use target/yocto-venv/bin/python" % exc
    )

EXIT_ERROR = 1
EXIT_SKIPPED = 3

# The collection name the stub core layer (stubs/conf/layer.conf) takes.
CORE_COLLECTION = "core"


class Failure(Exception):
    """A problem to report as one line (plus optional detail) and exit 1."""

    def __init__(self, message, detail=""):
        super().__init__(message)
        self.detail = detail


class Skipped(Exception):
    """The recipe raised bb.parse.SkipRecipe (reason in the message)."""


def say(message):
    print("bb.py: %s" % message, file=sys.stderr)


# ---------------------------------------------------------------------------
# Logging. bitbake logs through the "BitBake" logger tree and, for fatal
# problems, logs first and then raises BBHandledException (which carries no
# message). Keep the records so an error can be reported with its cause.


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def take(self, minlevel=logging.WARNING):
        taken = [r for r in self.records if r.levelno >= minlevel]
        self.records = []
        return [self.format(r) for r in taken]


class Echo(logging.Handler):
    """Warnings go to stderr as they happen (errors are reported at exit).
    Muted while something else reports them (a failed download)."""

    muted = False

    def emit(self, record):
        if record.levelno < logging.ERROR and not self.muted:
            say("bitbake %s: %s" % (record.levelname.lower(), self.format(record)))


RECORDER = Recorder()
ECHO = Echo()


def setup_logging(verbose):
    log = logging.getLogger("BitBake")
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.propagate = False
    log.addHandler(RECORDER)
    ECHO.setLevel(logging.INFO if verbose else logging.WARNING)
    log.addHandler(ECHO)
    # bb.event queues every event until a UI attaches and prints the queue's
    # log records at exit when none did (bb/event.py print_ui_queue): tell it
    # a UI is there, since the records are handled above.
    bb.event._uiready = True


# ---------------------------------------------------------------------------
# Configuration: bblayers.conf -> each layer.conf -> bitbake.conf -> base


def apply_sets(d, sets):
    for name, value in sets:
        d.setVar(name, value)


def parse_conf_file(path, d):
    # What cookerdata.parse_config_file does, minus its logging wrapper.
    return bb.parse.handle(path, d, True, baseconfig=True)


def parse_layers(layers, sets, topdir, pretend=()):
    """Parse the stub core layer and `layers` like bitbake parses BBLAYERS.

    Returns (d, info): the datastore after all layer.conf files and
    BBFILES_DYNAMIC, and info = {"collections": {name: layerdir},
    "dynamic": [...]}. Checks what bitbake checks (LAYERSERIES_COMPAT against
    LAYERSERIES_CORENAMES, duplicated collections, LAYERDEPENDS, priorities,
    patterns) and, unlike bitbake which only warns, requires
    LAYERSERIES_COMPAT_<collection> in every layer given.
    """
    # As CookerDataBuilder starts: a clean python context for ${@...} and
    # anonymous functions, and class type "global" while parsing conf files.
    bb.utils.set_context(bb.utils.clean_context())
    bb.event.set_class_handlers(bb.event.clean_class_handlers())
    d = bb.data.init()
    d.setVar("__bbclasstype", "global")
    d.setVar("TOPDIR", topdir)
    # First pass of --set: `?=` defaults in the conf files defer to it.
    apply_sets(d, sets)
    # What a bblayers.conf.sample sets. BBPATH must not start empty: an empty
    # entry would make bitbake look for classes relative to the cwd.
    d.setVar("BBPATH", "${TOPDIR}")
    if d.getVar("BBFILES") is None:
        d.setVar("BBFILES", "")

    all_layers = [STUBS] + [os.path.abspath(layer).rstrip("/") for layer in layers]
    owner = {}
    compat = {}
    layerseries = None
    for layer in all_layers:
        conf = os.path.join(layer, "conf", "layer.conf")
        if not os.path.isfile(conf):
            raise Failure("layer %s has no conf/layer.conf" % layer)
        before = set((d.getVar("BBFILE_COLLECTIONS") or "").split())
        d.setVar("LAYERDIR", layer)
        d.setVar("LAYERDIR_RE", re.escape(layer))
        d = parse_conf_file(conf, d)
        # bitbake freezes ${LAYERDIR} into every value the layer set.
        d.expandVarref("LAYERDIR")
        d.expandVarref("LAYERDIR_RE")
        for c in (d.getVar("BBFILE_COLLECTIONS") or "").split():
            if c not in before:
                owner.setdefault(c, layer)
            # bitbake reads, then deletes, each LAYERSERIES_COMPAT_<c> after
            # every layer, so one layer cannot copy another's.
            entry = d.getVar("LAYERSERIES_COMPAT_%s" % c)
            if entry:
                compat[c] = set(entry.split())
                d.delVar("LAYERSERIES_COMPAT_%s" % c)
        if not layerseries:
            layerseries = set((d.getVar("LAYERSERIES_CORENAMES") or "").split())
            if layerseries:
                d.delVar("LAYERSERIES_CORENAMES")
    d.delVar("LAYERDIR_RE")
    d.delVar("LAYERDIR")
    for c, names in compat.items():
        d.setVar("LAYERSERIES_COMPAT_%s" % c, " ".join(sorted(names)))
    d.setVar("LAYERSERIES_CORENAMES", " ".join(sorted(layerseries or ())))

    collections = (d.getVar("BBFILE_COLLECTIONS") or "").split()
    # Pretended collections (layers not present here, e.g. meta-balena's
    # balena-common) count for BBFILES_DYNAMIC and LAYERDEPENDS only.
    present = collections + [p for p in pretend if p not in collections]

    # BBFILES_DYNAMIC: "collection:pattern" adds the pattern to BBFILES when
    # that collection is present, "!collection:pattern" when it is absent.
    dynamic = []
    invalid = []
    for entry in (d.getVar("BBFILES_DYNAMIC") or "").split():
        name, sep, pattern = entry.partition(":")
        if not sep or not name or name == "!":
            invalid.append(entry)
            continue
        invert = name.startswith("!")
        name = name.lstrip("!")
        active = (name in present) != invert
        if active:
            d.appendVar("BBFILES", " " + pattern)
        dynamic.append({"entry": entry, "active": active})
    if invalid:
        raise Failure(
            "BBFILES_DYNAMIC entries must be of the form {!}<collection name>:<filename pattern>",
            "\n".join(invalid),
        )

    problems = []
    seen = set()
    for c in collections:
        if c in seen:
            problems.append("Found duplicated BBFILE_COLLECTIONS '%s', check bblayers.conf or layer.conf to fix it." % c)
        seen.add(c)
        if c in compat and not (compat[c] & (layerseries or set())):
            problems.append(
                "Layer %s is not compatible with the core layer which only supports these series: %s (layer is compatible with %s)"
                % (c, " ".join(sorted(layerseries or ())), " ".join(sorted(compat[c])))
            )
        if c not in compat and c != CORE_COLLECTION:
            problems.append("Layer %s does not set LAYERSERIES_COMPAT_%s in its conf/layer.conf" % (c, c))
        problems += check_collection(d, c, present)
    if problems:
        raise Failure(problems[0], "\n".join(problems[1:]))
    return d, {"collections": {c: owner.get(c) for c in collections}, "dynamic": dynamic}


def check_collection(d, c, present):
    """What bb/cooker.py handleCollections rejects for one collection."""
    problems = []
    priority = d.getVar("BBFILE_PRIORITY_%s" % c)
    if priority:
        try:
            int(priority)
        except ValueError:
            problems.append('invalid value for BBFILE_PRIORITY_%s: "%s"' % (c, priority))
    pattern = d.getVar("BBFILE_PATTERN_%s" % c)
    if pattern is None:
        problems.append("BBFILE_PATTERN_%s not defined" % c)
    else:
        try:
            re.compile(pattern)
        except re.error:
            problems.append("BBFILE_PATTERN_%s \"%s\" is not a valid regular expression" % (c, pattern))
    deps = d.getVar("LAYERDEPENDS_%s" % c)
    if deps:
        try:
            depdict = bb.utils.explode_dep_versions2(deps)
        except bb.utils.VersionStringException as exc:
            return problems + ["Error parsing LAYERDEPENDS_%s: %s" % (c, exc)]
        for dep, ops in depdict.items():
            if dep not in present:
                problems.append("Layer '%s' depends on layer '%s', but this layer is not enabled in your configuration" % (c, dep))
                continue
            for opstr in ops:
                have = d.getVar("LAYERVERSION_%s" % dep)
                op, want = opstr.split()
                if not have:
                    problems.append("Layer '%s' depends on version %s of layer '%s', which does not specify a version" % (c, opstr, dep))
                elif not bb.utils.vercmp_string_op(have, want, op):
                    problems.append("Layer '%s' depends on version %s of layer '%s', but version %s is enabled" % (c, opstr, dep, have))
    return problems


def finish_config(d, sets, unsets):
    """bitbake.conf, then base.bbclass, as parseConfigurationFiles does."""
    d.setVar("BB_CACHEDIR", "${TOPDIR}/cache")
    bb.codeparser.parser_cache_init(d.getVar("BB_CACHEDIR"))
    # Found through BBPATH, i.e. the stub core layer.
    d = parse_conf_file(os.path.join("conf", "bitbake.conf"), d)
    # Second pass of --set, like local.conf: wins over bitbake.conf's `=`.
    apply_sets(d, sets)
    for name in unsets:
        d.delVar(name)
    for bbclass in ["base"] + (d.getVar("INHERIT") or "").split():
        bb.parse.BBHandler.inherit(bbclass, "configuration INHERITs", 0, d)
    # Signature generator ("noop": no hash server) and fetcher caches; the
    # parser needs the former to finalise a recipe.
    bb.fetch2.fetcher_init(d, servercontext=False)
    bb.parse.init_parser(d)
    # What parseBaseConfiguration does before handing the data to recipes.
    d.renameVar("__depends", "__base_depends")
    d.setVar("__bbclasstype", "recipe")
    return d


# ---------------------------------------------------------------------------
# BBFILES: which recipes and bbappends bitbake would see


def collect_bbfiles(d):
    """.bb and .bbappend files BBFILES names, as bb/cooker.py collects them
    (globs, or whole directories; BBMASK applied)."""
    found = []
    for entry in (d.getVar("BBFILES") or "").split():
        if os.path.isdir(entry):
            for root, _dirs, files in os.walk(entry):
                found += [os.path.join(root, f) for f in sorted(files) if f.endswith((".bb", ".bbappend"))]
        else:
            found += sorted(glob.glob(entry)) or ([entry] if os.path.exists(entry) else [])
    mask = d.getVar("BBMASK")
    masked = re.compile("|".join(m.lstrip("|") for m in mask.split())) if mask else None
    recipes, appends = [], []
    for f in dict.fromkeys(found):  # keeps order, drops duplicates
        if masked and masked.search(f):
            continue
        if f.endswith(".bb"):
            recipes.append(f)
        elif f.endswith(".bbappend"):
            appends.append(f)
    return recipes, appends


def appends_for(recipe, appends):
    """bbappends that apply to `recipe`: same name, or a '%' wildcard
    (foo_%.bbappend applies to foo_1.2.bb), as bb/cooker.py matches them."""
    name = os.path.basename(recipe)
    chosen = []
    for f in appends:
        base = os.path.basename(f)[: -len(".bbappend")] + ".bb"
        if base == name or ("%" in base and base.startswith(name[: base.index("%")])):
            chosen.append(f)
    return chosen


def layer_of(d, path, collections):
    """The collection whose BBFILE_PATTERN matches `path`, longest pattern
    first (nested layers), as bitbake computes FILE_LAYERNAME."""
    patterns = sorted(
        ((d.getVar("BBFILE_PATTERN_%s" % c) or "", c) for c in collections),
        reverse=True,
    )
    for pattern, c in patterns:
        if pattern and re.match(pattern, path):
            return c
    return None


# ---------------------------------------------------------------------------
# Recipes


def parse_recipe(args, topdir):
    """Configuration + recipe (+ bbappends), finalised. Returns the datastore
    of the requested variant (or raises Skipped)."""
    d, info = parse_layers(args.layer, args.set, topdir, args.with_collection)
    d = finish_config(d, args.set, args.unset)

    recipe = os.path.abspath(args.recipe)
    if not os.path.isfile(recipe):
        raise Failure("no such recipe: %s" % args.recipe)
    recipes, appends = collect_bbfiles(d)
    if args.layer and not args.any_recipe and recipe not in recipes:
        raise Failure(
            "%s is not matched by BBFILES, so bitbake would never parse it" % recipe,
            "BBFILES = %s" % " ".join((d.getVar("BBFILES") or "").split()),
        )
    chosen = appends_for(recipe, appends)
    for extra in args.bbappend:
        extra = os.path.abspath(extra)
        if not os.path.isfile(extra):
            raise Failure("no such bbappend: %s" % extra)
        if extra not in chosen:
            chosen.append(extra)

    d.setVar("__BBMULTICONFIG", "")
    d.setVar("FILE_LAYERNAME", layer_of(d, recipe, list(info["collections"])))
    d.setVar("__BB_RECIPE_FILE", recipe)
    if chosen:
        # multi_finalize parses these after the recipe, before finalising.
        d.setVar("__BBAPPEND", " ".join(chosen))
    # include=0: a whole recipe. bitbake parses it, applies __BBAPPEND, runs
    # deferred inherits, key expansion and anonymous python (finalize), and
    # makes one datastore per BBCLASSEXTEND variant.
    datastores = bb.parse.handle(recipe, d, 0)
    variant = args.variant or ""
    if variant not in datastores:
        raise Failure(
            "recipe has no variant %r" % variant,
            "variants: %s" % ", ".join(repr(v) for v in datastores),
        )
    rd = datastores[variant]
    skipped = rd.getVar("__SKIPPED")
    if skipped:
        raise Skipped(skipped if isinstance(skipped, str) else "skipped")
    return rd


def lookup(d, name):
    """VAR, VAR:override or VAR[flag]; ${...} in the name is expanded first,
    so `RDEPENDS:${PN}` works."""
    m = re.fullmatch(r"(.+?)\[(.+)\]", name)
    if m:
        return d.getVarFlag(d.expand(m.group(1)), m.group(2))
    return d.getVar(d.expand(name))


def cmd_expand(args, topdir):
    rd = parse_recipe(args, topdir)
    for spec in args.emit:
        # What bitbake writes into temp/run.do_install before it runs it:
        # the function (appends included) and every shell function and
        # exported variable it needs, expanded. The caller runs it.
        func, _, path = spec.partition("=")
        if not rd.getVar(func) or not rd.getVarFlag(func, "func"):
            raise Failure("%s: no shell function %s" % (args.recipe, func))
        with open(path, "w") as script:
            script.write("#!/bin/sh\n")
            bb.data.emit_func(func, script, rd)
            script.write("\nset -e\n%s\n" % func)
    return {name: lookup(rd, name) for name in args.var}


# ---------------------------------------------------------------------------
# Layers


def cmd_layer(args, topdir):
    d, info = parse_layers([args.layerdir], args.set, topdir, args.with_collection)
    layer = os.path.abspath(args.layerdir).rstrip("/")
    recipes, appends = collect_bbfiles(d)
    mine = [c for c, owner in info["collections"].items() if owner == layer]
    fields = ["BBFILE_PATTERN", "BBFILE_PRIORITY", "LAYERDEPENDS", "LAYERRECOMMENDS", "LAYERSERIES_COMPAT", "LAYERVERSION"]
    return {
        "layer": layer,
        "collections": {c: {f: d.getVar("%s_%s" % (f, c)) for f in fields} for c in mine},
        "LAYERSERIES_CORENAMES": d.getVar("LAYERSERIES_CORENAMES"),
        # Without the scratch TOPDIR bitbake's BBPATH starts with.
        "BBPATH": [p for p in (d.getVar("BBPATH") or "").split(":") if p and p != topdir],
        # Space-separated strings as bitbake holds them (${LAYERDIR}
        # resolved, whitespace collapsed); BBFILES_DYNAMIC entries whose
        # collection is present are also in BBFILES, as in bitbake:
        # "dynamic" says which.
        "BBFILES": " ".join((d.getVar("BBFILES") or "").split()),
        "BBFILES_DYNAMIC": " ".join((d.getVar("BBFILES_DYNAMIC") or "").split()),
        "dynamic": info["dynamic"],
        # What those patterns find on disk now.
        "recipes": recipes,
        "bbappends": appends,
    }


# ---------------------------------------------------------------------------
# Fetching crates


def crate_urls(d):
    """crate:// entries of SRC_URI, in order."""
    return [u for u in (d.getVar("SRC_URI") or "").split() if u.startswith("crate://")]


def cmd_fetch(args, topdir):
    if args.inc:
        d, _info = parse_layers(args.layer, args.set, topdir, args.with_collection)
        d = finish_config(d, args.set, args.unset)
        inc = os.path.abspath(args.inc)
        if not os.path.isfile(inc):
            raise Failure("no such file: %s" % args.inc)
        # An .inc as cargo-update-recipe-crates writes it: `SRC_URI += "..."`
        # and `SRC_URI[NAME-VERSION.sha256sum]` flags. Parse it as a recipe
        # include would be, into a datastore that has a recipe's identity.
        # PN must not be a crate's NAME-VERSION: the crate fetcher unpacks
        # a crate whose name equals BP as the recipe's own source instead.
        d.setVar("FILE", os.path.join(os.path.dirname(inc), "crates-fetch_1.0.bb"))
        d.setVar("PN", "crates-fetch")
        d.setVar("PV", "1.0")
        d.setVar("SRC_URI", "")
        bb.parse.handle(inc, d, True)
    else:
        if not args.recipe:
            raise Failure("fetch needs --inc FILE or a RECIPE")
        d = parse_recipe(args, topdir)

    urls = crate_urls(d)
    if not urls:
        raise Failure("no crate:// entries in SRC_URI of %s" % (args.inc or args.recipe))
    others = [u for u in (d.getVar("SRC_URI") or "").split() if not u.startswith("crate://")]
    if others:
        say("fetch: %d non-crate SRC_URI entr%s left out (only crate:// entries are fetched)"
            % (len(others), "y" if len(others) == 1 else "ies"))

    downloads = os.path.abspath(args.downloads)
    os.makedirs(downloads, exist_ok=True)
    d.setVar("DL_DIR", downloads)
    # A crate without SRC_URI[NAME-VERSION.sha256sum] is an error, not a
    # warning: every crate must be verified.
    d.setVar("BB_STRICT_CHECKSUM", "1")
    # BB_NO_NETWORK makes bitbake refuse any download; files already in
    # DL_DIR (with their .done stamps) are still re-verified.
    d.setVar("BB_NO_NETWORK", "1" if args.offline else "")
    d.setVar("PREMIRRORS", "")
    d.setVar("MIRRORS", "")

    # Stale checksum flags (no matching crate) mean an .inc out of step
    # with its own SRC_URI. Other entries' `;name=` checksums are theirs.
    names = {crate_name(u).replace(" ", "-") for u in urls}
    for entry in others:
        for param in entry.split(";")[1:]:
            if param.startswith("name="):
                names.update(param[len("name="):].split(","))
    flags = d.getVarFlags("SRC_URI") or {}
    stale = sorted(f for f in flags if f.endswith(".sha256sum") and f[: -len(".sha256sum")] not in names)
    if stale:
        say("fetch: warning: checksums for crates not in SRC_URI: %s" % ", ".join(stale))

    started = time.monotonic()
    fetcher = bb.fetch2.Fetch(urls, d)
    failures = []
    downloaded = 0
    RECORDER.take()
    for url in urls:
        ud = fetcher.ud[url]
        had = os.path.exists(ud.localpath) and os.path.exists(ud.donestamp)
        # wget's progress goes to stdout (bb/progress.py): keep it out of the
        # JSON and out of sight unless asked for (-v); bitbake's error log
        # already carries the output of a failed download.
        wget_output = io.StringIO()
        ECHO.muted = not args.verbose
        try:
            # One URL at a time so every bad crate is named, not just the
            # first one.
            with contextlib.redirect_stdout(sys.stderr if args.verbose else wget_output):
                fetcher.download([url])
            if not had:
                downloaded += 1
        except bb.fetch2.BBFetchException as exc:
            # bitbake logs the cause (e.g. "Checksum mismatch! File ... has
            # sha256 checksum X when Y was expected") and raises a generic
            # "Unable to fetch URL from any source": report both.
            detail = RECORDER.take()
            # bitbake only says "failed with exit code 8, see logfile":
            # wget's own ERROR line (e.g. "ERROR 404: Not Found.") says why.
            detail += [l.strip() for l in wget_output.getvalue().splitlines() if "ERROR" in l]
            failures.append((url, str(exc), detail))
        finally:
            ECHO.muted = False
        RECORDER.take()
    if failures:
        lines = []
        summary = []
        for url, message, detail in failures:
            # Name the cause in the headline: the detail says the rest.
            if any("Checksum mismatch" in entry for entry in detail):
                cause = "sha256 mismatch"
            elif any("Missing SRC_URI checksum" in entry for entry in detail):
                cause = "no SRC_URI[%s.sha256sum]" % crate_name(url).replace(" ", "-")
            elif "BB_NO_NETWORK" in message:
                cause = "not in --downloads, and --offline"
            else:
                cause = "download failed"
            summary.append("%s (%s)" % (crate_name(url), cause))
            lines.append("%s: %s" % (crate_name(url), message))
            lines += ["    " + line for entry in detail for line in entry.splitlines()]
        raise Failure(
            "%d of %d crates failed: %s" % (len(failures), len(urls), ", ".join(summary)),
            "\n".join(lines),
        )
    fetched = time.monotonic()

    unpack = os.path.abspath(args.unpack)
    vendor = os.path.join(unpack, "cargo_home", "bitbake")
    # Start from an empty vendor directory so crates of an earlier run
    # cannot satisfy cargo by accident.
    if os.path.isdir(vendor):
        shutil.rmtree(vendor)
    os.makedirs(unpack, exist_ok=True)
    fetcher.unpack(unpack)
    # The crate fetcher vendors every crate as NAME-VERSION/ (with a
    # .cargo-checksum.json cargo checks against Cargo.lock), except one whose
    # NAME-VERSION equals the recipe's BP: that is the recipe's own source
    # and is extracted straight into the unpack directory.
    bp = d.getVar("BP")
    expected = sorted(crate_name(u).replace(" ", "-") for u in urls)
    vendored = sorted(e for e in expected if e != bp)
    unpacked = sorted(os.listdir(vendor)) if os.path.isdir(vendor) else []
    missing = [e for e in vendored if not os.path.isfile(os.path.join(vendor, e, ".cargo-checksum.json"))]
    if missing or len(unpacked) != len(vendored):
        raise Failure(
            "unpacked %d crates into %s, expected %d" % (len(unpacked), vendor, len(vendored)),
            "missing or without .cargo-checksum.json: %s" % " ".join(missing),
        )
    say("fetch: %d crates, %d downloaded, %d already in %s; all %d sha256 verified; "
        "vendor directory %s (%.1f s)"
        % (len(urls), downloaded, len(urls) - downloaded, downloads, len(urls), vendor,
           time.monotonic() - started))
    result = {
        "crates": len(urls),
        "downloaded": downloaded,
        "verified": len(urls),
        "download_seconds": round(fetched - started, 2),
        "unpack_seconds": round(time.monotonic() - fetched, 2),
        "vendor_dir": vendor,
        "vendored": vendored,
    }
    if bp in expected:
        result["source_dir"] = os.path.join(unpack, bp)
    return result


def crate_name(url):
    parts = url.split(";")[0].split("/")
    return "%s %s" % (parts[-2], parts[-1])


# ---------------------------------------------------------------------------
# Command line


def parse_set(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected VAR=VALUE, got %r" % text)
    return name, value


def build_parser():
    p = argparse.ArgumentParser(
        prog="bb.py",
        description="Parse layers and recipes and fetch crates with bitbake's own library (stub oe-core).",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show bitbake's notes and debug messages")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, layers=True):
        if layers:
            sp.add_argument("--layer", action="append", default=[], metavar="DIR",
                            help="a layer to add after the stub core layer (repeatable, in BBLAYERS order)")
        sp.add_argument("--set", action="append", default=[], type=parse_set, metavar="VAR=VALUE",
                        help="set VAR before the conf files (so `?=` defaults yield) and again after "
                             "bitbake.conf (like local.conf); repeatable")
        sp.add_argument("--with-collection", action="append", default=[], metavar="NAME",
                        help="pretend a layer with this collection is present (BBFILES_DYNAMIC, LAYERDEPENDS)")

    def recipe_opts(sp):
        sp.add_argument("--unset", action="append", default=[], metavar="VAR",
                        help="delete VAR after bitbake.conf")
        sp.add_argument("--no-unpackdir", dest="unset", action="append_const", const="UNPACKDIR",
                        help="same as --unset UNPACKDIR: a release before styhead, which has none")
        sp.add_argument("--bbappend", action="append", default=[], metavar="FILE",
                        help="apply this bbappend too (after those BBFILES finds for the recipe)")
        sp.add_argument("--variant", default="", metavar="NAME",
                        help="a BBCLASSEXTEND variant (e.g. native) instead of the recipe itself")
        sp.add_argument("--any-recipe", action="store_true",
                        help="parse the recipe even if no layer's BBFILES matches it")

    e = sub.add_parser("expand", help="print the expanded values of variables of a recipe as JSON")
    common(e)
    recipe_opts(e)
    e.add_argument("--emit", action="append", default=[], metavar="FUNC=PATH",
                   help="write shell function FUNC as bitbake would run it (run.FUNC) to PATH")
    e.add_argument("recipe", metavar="RECIPE")
    e.add_argument("var", nargs="+", metavar="VAR", help="VAR, VAR:override or VAR[flag]")

    lay = sub.add_parser("layer", help="print a layer's collections and BBFILES as JSON")
    common(lay, layers=False)
    lay.add_argument("layerdir", metavar="LAYERDIR")

    f = sub.add_parser("fetch", help="download, verify and unpack the crate:// entries of an .inc or recipe")
    common(f)
    recipe_opts(f)
    f.add_argument("--inc", metavar="FILE", help="a crates .inc (as cargo-update-recipe-crates writes) instead of a recipe")
    f.add_argument("--downloads", required=True, metavar="DIR", help="bitbake's DL_DIR (kept between runs)")
    f.add_argument("--unpack", required=True, metavar="DIR", help="where to unpack (crates land in DIR/cargo_home/bitbake)")
    f.add_argument("--offline", action="store_true", help="BB_NO_NETWORK=1: use only what --downloads holds")
    f.add_argument("recipe", nargs="?", metavar="RECIPE")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    if args.command == "fetch" and bool(args.inc) == bool(args.recipe):
        build_parser().error("fetch takes either --inc FILE or RECIPE")
    setup_logging(args.verbose)
    commands = {"expand": cmd_expand, "layer": cmd_layer, "fetch": cmd_fetch}
    # TOPDIR: a scratch directory for bitbake's caches, removed at exit.
    topdir = tempfile.mkdtemp(prefix="bb.py-")
    try:
        # stdout is for the JSON answer only: anything bitbake prints goes
        # to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            result = commands[args.command](args, topdir)
    except Skipped as exc:
        print(json.dumps({"skipped": str(exc)}))
        return EXIT_SKIPPED
    except Failure as exc:
        return report(str(exc), exc.detail)
    except bb.parse.SkipRecipe as exc:
        # Raised while parsing (e.g. from an inline expression), not from
        # anonymous python, which bitbake records in __SKIPPED instead.
        print(json.dumps({"skipped": str(exc)}))
        return EXIT_SKIPPED
    except bb.parse.ParseError as exc:
        return report(str(exc))
    except bb.data_smart.ExpansionError as exc:
        return report(str(exc))
    except bb.fetch2.BBFetchException as exc:
        return report(str(exc))
    except bb.BBHandledException:
        # bitbake logged the reason (bb.fatal and friends) before raising.
        return report("bitbake stopped with an error")
    except OSError as exc:
        return report(str(exc))
    finally:
        shutil.rmtree(topdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


def report(message, detail=""):
    """One line saying what failed, then the detail and what bitbake logged."""
    lines = message.strip().splitlines() or ["error"]
    logged = RECORDER.take(logging.ERROR)
    if message == "bitbake stopped with an error" and logged:
        # The logged message is the real one: promote its first line.
        first = logged[0].splitlines()
        lines = first + ["(" + message + ")"]
        logged = logged[1:]
    say("error: %s" % lines[0])
    for line in lines[1:] + detail.splitlines() + [l for entry in logged for l in entry.splitlines()]:
        print("    %s" % line, file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
