#!/usr/bin/env python3
"""The parts of tests/examples/check that need a parser: the compose file,
the Dockerfile (and running its build stage for real, without Docker), and
the updlock commands shown in the docs.

  check.py compose FILE
  check.py dockerfile CTX ARCH ROOT      render, check COPY sources, run the
                                         stage that makes /usr/local/bin/updlock
                                         in ROOT; prints JSON
  check.py readme-lines README ENTRY     the README's quoted lines are entry.sh's
  check.py docs UPDLOCK FILE...          commands and links in Markdown
  check.py supervisor LOCKS KEY PORTFILE LOG   a stand-in for the supervisor's API

Each prints what it found; a problem is a line on stderr and exit status 1.
"""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

# The repository: links in the docs must stay inside it.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

problems = []


def problem(msg):
    problems.append(msg)


def finish(out=None):
    if out is not None:
        print(json.dumps(out) if not isinstance(out, str) else out)
    for p in problems:
        print(p, file=sys.stderr)
    sys.exit(1 if problems else 0)


# --- docker-compose.yml -------------------------------------------------------


def cmd_compose(path):
    import yaml  # only this subcommand needs PyYAML

    with open(path) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict):
        problem(f"{path}: not a YAML mapping")
        finish()
    version = str(doc.get("version", ""))
    # balena's compose support is version 2.x (fields of version 3 are not).
    if not re.fullmatch(r"2(\.\d)?", version):
        problem(f"{path}: version {version!r}, balena reads compose version 2.x")
    services = doc.get("services")
    if not isinstance(services, dict) or len(services) != 1:
        problem(f"{path}: want exactly one service, found {services!r}")
        finish()
    (name, svc), = services.items()
    ctx_dir = os.path.dirname(os.path.abspath(path))
    build = svc.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    if context is None:
        problem(f"{path}: service {name} has no build context")
    else:
        ctx = os.path.normpath(os.path.join(ctx_dir, context))
        if not os.path.isfile(os.path.join(ctx, "Dockerfile.template")):
            problem(f"{path}: build context {context} has no Dockerfile.template")
        if os.path.exists(os.path.join(ctx, "Dockerfile")):
            problem(f"{path}: a Dockerfile beside Dockerfile.template: balena would build that one")
    labels = svc.get("labels") or {}
    if isinstance(labels, list):
        labels = dict(
            (item.split("=", 1) + [""])[:2] for item in labels
        )
    if str(labels.get("io.balena.features.supervisor-api", "")) not in ("1", "true"):
        problem(f"{path}: service {name} lacks the label io.balena.features.supervisor-api: '1'")
    devices = [str(d).split(":")[0] for d in svc.get("devices") or []]
    if "/dev/gpiochip0" not in devices:
        problem(f"{path}: service {name} does not map /dev/gpiochip0 (devices: {devices})")
    # The supervisor mounts the lock directory itself: nothing of ours may
    # cover it, and the container must stay root (entry.sh drops privileges).
    mounts = [str(v).split(":")[1] if ":" in str(v) else str(v) for v in svc.get("volumes") or []]
    tmpfs = svc.get("tmpfs") or []
    tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
    for m in mounts + [str(t).split(":")[0] for t in tmpfs]:
        if m.rstrip("/") in ("/tmp/balena", "/tmp/resin", "/tmp"):
            problem(f"{path}: {m} is mounted over the supervisor's lock directory")
    if str(svc.get("user", "root")) not in ("root", "0", "0:0"):
        problem(f"{path}: user: {svc['user']}: updlock must run as root (entry.sh's JOB_USER drops privileges for the job)")
    if svc.get("privileged"):
        problem(f"{path}: privileged: not needed, the devices are mapped")
    grace = str(svc.get("stop_grace_period", "10s"))
    m = re.fullmatch(r"(\d+)s", grace)
    if not m or int(m.group(1)) <= 5:
        problem(f"{path}: stop_grace_period {grace}: must be longer than updlock's --grace (5s)")
    finish(f"service {name}: build {context}, devices {devices}, label io.balena.features.supervisor-api, stop_grace_period {grace}")


# --- Dockerfile ---------------------------------------------------------------


def instructions(text):
    """(keyword, arguments) per instruction: continuation lines joined, and
    comment lines dropped, inside a continuation too (as Docker does)."""
    out = []
    cur = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and cur is None):
            continue
        if cur is None:
            cur = line
        else:
            cur += " " + line
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        if cur:
            kw, _, args = cur.partition(" ")
            out.append((kw.upper(), args.strip()))
        cur = None
    if cur:
        problem("Dockerfile ends in a continuation line")
    return out


def parse_copy(args):
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        k, _, v = words.pop(0)[2:].partition("=")
        flags[k] = v
    if len(words) < 2:
        problem(f"COPY {args}: needs a source and a destination")
        return flags, [], ""
    return flags, words[:-1], words[-1]


def in_image(workdir, dest, src):
    """The path a COPY source lands at, as Docker resolves it."""
    d = dest if dest.startswith("/") else os.path.join(workdir, dest)
    if dest.endswith("/") or dest in (".", "./"):
        return os.path.normpath(os.path.join(d, os.path.basename(src.rstrip("/"))))
    return os.path.normpath(d)


ABSOLUTE = re.compile(r"""(^|[\s"'=:;|&<>(])/""")


def cmd_dockerfile(ctx, arch, root):
    with open(os.path.join(ctx, "Dockerfile.template")) as f:
        text = f.read()
    # What balena's builder does with the template.
    text = text.replace("%%BALENA_ARCH%%", arch)
    left = re.findall(r"%%[A-Z_]+%%", text)
    if left:
        problem(f"template variables left after rendering BALENA_ARCH: {sorted(set(left))}")
    stages = []  # [{name, ins: [(kw, args)]}]
    for kw, args in instructions(text):
        if kw == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            stages.append({"name": m.group(2) if m else None, "from": m.group(1) if m else args, "ins": []})
        elif not stages:
            if kw != "ARG":
                problem(f"{kw} before FROM")
        else:
            stages[-1]["ins"].append((kw, args))
    if not stages:
        problem("no FROM")
        finish()

    # Every COPY from the build context names files that are there.
    for st in stages:
        for kw, args in st["ins"]:
            if kw in ("COPY", "ADD"):
                flags, srcs, _ = parse_copy(args)
                if "from" in flags:
                    continue
                for s in srcs:
                    if s.startswith("/") or ".." in s.split("/"):
                        problem(f"{kw} {s}: outside the build context")
                    elif not glob.glob(os.path.join(ctx, s)):
                        problem(f"{kw} {s}: not in the build context {ctx}")

    # The image: what the final stage puts where, and how it starts.
    final = stages[-1]
    workdir = "/"
    files = {}
    entrypoint = None
    from_stage = None
    for kw, args in final["ins"]:
        if kw == "WORKDIR":
            workdir = os.path.join(workdir, args)
        elif kw == "USER" and args.split(":")[0] not in ("root", "0"):
            problem(f"USER {args} in the image: updlock must run as root (entry.sh drops privileges for the job)")
        elif kw == "COPY":
            flags, srcs, dest = parse_copy(args)
            for s in srcs:
                where = in_image(workdir, dest, s)
                files[where] = {"stage": flags["from"], "path": s} if "from" in flags else {"context": s}
                if "from" in flags and where == "/usr/local/bin/updlock":
                    from_stage = (flags["from"], s)
        elif kw == "ENTRYPOINT":
            try:
                entrypoint = json.loads(args)
            except ValueError:
                problem(f"ENTRYPOINT {args}: not the exec form: the entry script would not be PID 1")
    if from_stage is None:
        problem("the image gets no /usr/local/bin/updlock from a build stage")
        finish()
    if not (isinstance(entrypoint, list) and entrypoint and entrypoint[0] in files):
        problem(f"ENTRYPOINT {entrypoint}: not a file the image's COPY instructions put there")

    # Build the stage that makes updlock, for real: its ARGs, WORKDIR,
    # COPY and RUN in a directory standing in for its root file system. A RUN
    # must keep to relative paths, or it would touch this machine's files.
    name, src = from_stage
    stage = next((s for s in stages if s["name"] == name), None)
    if stage is None:
        problem(f"COPY --from={name}: no stage of that name")
        finish()
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C"}
    wd = "/"
    run_log = []
    rc = 0
    for kw, args in stage["ins"]:
        if kw == "ARG":
            k, eq, v = args.partition("=")
            if eq:
                env[k] = v.strip('"')
        elif kw == "WORKDIR":
            wd = os.path.join(wd, args)
            os.makedirs(root + wd, exist_ok=True)
        elif kw == "COPY":
            flags, srcs, dest = parse_copy(args)
            target = root + (dest if dest.startswith("/") else os.path.join(wd, dest))
            into_dir = dest.endswith("/") or dest in (".", "./") or len(srcs) > 1
            os.makedirs(target if into_dir else os.path.dirname(target), exist_ok=True)
            for s in srcs:
                p = os.path.join(ctx, s)
                if os.path.isdir(p):  # a directory's contents, as Docker copies it
                    os.makedirs(target, exist_ok=True)
                    subprocess.run(["cp", "-a", p.rstrip("/") + "/.", target], check=True)
                else:
                    subprocess.run(["cp", "-a", p, target], check=True)
        elif kw == "RUN":
            if ABSOLUTE.search(args):
                problem(f"RUN in stage {name} uses an absolute path: not run here (keep it to WORKDIR)")
                finish()
            r = subprocess.run(["sh", "-c", args], cwd=root + wd, env=env, capture_output=True, text=True)
            run_log.append(r.stdout + r.stderr)
            if r.returncode != 0:
                rc = r.returncode
                break
        elif kw in ("ENV", "ADD", "USER", "SHELL"):
            problem(f"{kw} in stage {name}: this check does not emulate it")
            finish()
    produced = root + (src if src.startswith("/") else os.path.join(wd, src))
    finish({
        "arch": arch,
        "run_status": rc,
        "run_output": "".join(run_log),
        "binary": produced if rc == 0 and os.path.isfile(produced) else None,
        "files": files,
        "entrypoint": entrypoint,
    })


# --- README: the three lines ----------------------------------------------------


def cmd_readme_lines(readme, entry):
    with open(entry) as f:
        entry_lines = [l.rstrip("\n") for l in f]
    with open(readme) as f:
        text = f.read()
    quoted = [l for block in re.findall(r"```sh\n(.*?)```", text, re.S) for l in block.splitlines()
              if re.match(r'(ACTUATOR=|JOB_USER=|\[ "\$#")', l)]
    if len(quoted) != 3:
        problem(f"{readme}: quotes {len(quoted)} of entry.sh's three lines, want 3")
    for l in quoted:
        if l not in entry_lines:
            problem(f"{readme}: quotes a line entry.sh does not have: {l}")
    finish(f"{len(quoted)} lines quoted, as in entry.sh")


# --- docs: updlock commands and links ---------------------------------------------

SUBCOMMANDS = ("run", "hold", "watch", "safe", "status", "help")


def help_options(updlock, sub):
    out = subprocess.run([updlock, "help", sub], capture_output=True, text=True).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b", out))


def code_spans(text):
    """Lines of fenced code blocks (not ```text ones: pictures), and inline
    code spans."""
    spans = []
    for lang, block in re.findall(r"^```([^\n]*)\n(.*?)^```", text, re.S | re.M):
        if lang.strip() != "text":
            spans += block.splitlines()
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    spans += re.findall(r"`([^`\n]+)`", prose)
    return spans


def cmd_docs(updlock, files):
    opts = {s: help_options(updlock, s) for s in SUBCOMMANDS if s != "help"}
    seen = 0
    for path in files:
        with open(path) as f:
            text = f.read()
        for span in code_spans(text):
            # A command may follow a prompt, sudo, or be a unit's Exec line.
            m = re.search(r"(?:^|[\s$#=;&|(])(?:sudo\s+)?((?:/usr(?:/local)?/bin/)?updlock(?:\s.*)?)$", span.strip())
            if not m:
                continue
            try:
                words = shlex.split(m.group(1).split(" #")[0])
            except ValueError:
                problem(f"{path}: cannot split: {span}")
                continue
            words = words[1:]
            if not words or words in (["help"], ["--help"]):
                continue
            subs = [w for w in words if w in SUBCOMMANDS]
            if not subs:
                # An option named in prose (`updlock --host`): it must exist.
                for w in words:
                    if w.startswith("-") and not any(w.split("=")[0] in o for o in opts.values()):
                        problem(f"{path}: `{span.strip()}`: {w} is not an option of updlock (updlock help)")
                seen += 1
                continue
            sub = subs[0]
            if sub == "help":
                rest = words[words.index("help") + 1:]
                if rest and rest[0] not in SUBCOMMANDS + ("boards", "settings"):
                    problem(f"{path}: updlock help {rest[0]}: no such topic")
                seen += 1
                continue
            args = words[: words.index("--")] if "--" in words else words
            # `updlock safe GPIO17`: safe takes its line as an option, not an argument.
            after = args[args.index(sub) + 1:]
            if sub == "safe" and after and not after[0].startswith("-"):
                problem(f"{path}: `{span.strip()}`: updlock safe takes the line as --gpio LINE")
            for w in args:
                if w.startswith("-") and w.split("=")[0] not in opts[sub]:
                    problem(f"{path}: `{span.strip()}`: {w} is not an option of updlock {sub} (updlock help {sub})")
            seen += 1
        # Relative links name files that exist.
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            p = os.path.normpath(os.path.join(os.path.dirname(path), target.split("#")[0]))
            if not os.path.exists(p):
                problem(f"{path}: link to {target}: no such file")
            elif os.path.commonpath([os.path.abspath(p), ROOT]) != ROOT:
                # It resolves here, but a clone of the repository lacks it.
                problem(f"{path}: link to {target}: outside the repository")
    finish(f"{seen} updlock commands in {len(files)} files")


# --- A stand-in for the supervisor's API ---------------------------------------------


def cmd_supervisor(locks, key, port_file, log_file):
    """GET /v1/device (an update pending) and POST /v1/update, as the
    supervisor answers them; every request is logged as a JSON line with
    whether a lock file existed the moment it arrived. Serves until killed."""
    import http.server
    import urllib.parse

    class Handler(http.server.BaseHTTPRequestHandler):
        def handle_one(self, method):
            present = any(os.path.exists(os.path.join(locks, n)) for n in ("updates.lock", "resin-updates.lock"))
            url = urllib.parse.urlsplit(self.path)
            apikey = urllib.parse.parse_qs(url.query).get("apikey", [None])[0]
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with open(log_file, "a") as f:
                f.write(json.dumps({"method": method, "path": url.path, "apikey": apikey, "lock_present": present}) + "\n")
            if apikey != key:
                status, body = 401, "Unauthorized"
            elif (method, url.path) == ("GET", "/v1/device"):
                status, body = 200, json.dumps({"status": "Idle", "update_pending": True, "update_downloaded": True, "update_failed": False})
            elif (method, url.path) == ("POST", "/v1/update"):
                status, body = 204, ""
            else:
                status, body = 404, "Not Found"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body.encode())

        def do_GET(self):
            self.handle_one("GET")

        def do_POST(self):
            self.handle_one("POST")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


def main(argv):
    if len(argv) >= 2 and argv[0] == "compose":
        cmd_compose(argv[1])
    elif len(argv) == 4 and argv[0] == "dockerfile":
        cmd_dockerfile(*argv[1:])
    elif len(argv) == 3 and argv[0] == "readme-lines":
        cmd_readme_lines(*argv[1:])
    elif len(argv) == 5 and argv[0] == "supervisor":
        cmd_supervisor(*argv[1:])
    elif len(argv) >= 3 and argv[0] == "docs":
        cmd_docs(argv[1], argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(64)


if __name__ == "__main__":
    main(sys.argv[1:])
