"""Installing swprof like a Linux tool.

--part install: `cmake --install` into a scratch prefix puts the binary, the man page (man renders
it and it lists every subcommand and export format) and the bash completion in place; the
completion, sourced in bash and called as bash calls it, offers the subcommands, exactly the
options each subcommand's --help lists, and the values of --format and --mode.

--part deb: `cpack -G DEB` builds a .deb whose Depends come from the shared libraries the binary
links; it is installed with apt into a fresh Debian bookworm made by debootstrap (minbase, as a
scratch root under the test's directory, no mounts), where `swprof --version`, `man swprof` and
the completion work, and apt removes it again. The bootstrapped root is cached as a tarball in
~/.cache/swprof (about 30 s to make, a few seconds to unpack). Installing into a chroot rather
than on this machine leaves the machine as it was and proves the package's dependencies resolve
on a system that has none of the build's libraries.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, expect  # noqa: E402

SUBCOMMANDS = ["record", "analyze", "flamegraph", "export", "import", "diff", "dump", "top"]


def run(argv, timeout=600, check=True, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        expect(proc.returncode == 0, "%s failed (%d): %s %s" % (" ".join(argv), proc.returncode,
                                                                proc.stdout[-1500:], proc.stderr[-1500:]))
    return proc


def help_options(swprof, sub):
    """Options and their fixed values as `swprof SUB --help` lists them."""
    text = run([swprof, sub, "--help"]).stdout
    options, values = set(), {}
    for line in text.splitlines():
        m = re.match(r"^\s+((?:-{1,2}[\w-]+,?)+)(?:\{\w+\})?(?:\s+TEXT:\{([\w,]+)\})?", line)
        if m:
            names = [n for n in m.group(1).split(",") if n]
            options.update(names)
            if m.group(2):
                for n in names:
                    values[n] = set(m.group(2).split(","))
    return options, values


def complete(completion, words, cwd=None):
    """What bash completion offers for the command line `words` (the last one being completed)."""
    script = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _swprof; printf "%s\\n" "${COMPREPLY[@]}"'
    proc = run(["bash", "-c", script, "complete", completion] + words, cwd=cwd)
    return set(l for l in proc.stdout.splitlines() if l)


def test_completion(swprof, completion, tmp):
    expect(complete(completion, ["swprof", ""]) >= set(SUBCOMMANDS), "subcommands offered")
    expect(complete(completion, ["swprof", "ex"]) == {"export"}, "'ex' completes to export")
    for sub in SUBCOMMANDS:
        options, values = help_options(swprof, sub)
        offered = complete(completion, ["swprof", sub, "-"])
        offered.discard("--")
        expect(offered == options, "%s: completion offers %s, --help lists %s (missing %s, extra %s)" %
               (sub, sorted(offered), sorted(options), sorted(options - offered), sorted(offered - options)))
        for option, allowed in values.items():
            got = complete(completion, ["swprof", sub, option, ""])
            expect(got == allowed, "%s %s: completion offers %s, --help allows %s" % (sub, option, got, allowed))
    open(os.path.join(tmp, "run one.swp"), "w").close()
    open(os.path.join(tmp, "notes.txt"), "w").close()
    expect(complete(completion, ["swprof", "analyze", "r"], cwd=tmp) == {"run one.swp"}, "snapshot files, spaces kept whole")
    expect("python3" in complete(completion, ["swprof", "record", "-o", "x.swp", "--", "python"]), "the command after --")
    print("ok: bash completion: subcommands, every --help option of each, --format/--mode/--estimator/--from values, .swp files")


def part_install(args, tmp):
    prefix = os.path.join(tmp, "prefix")
    run(["cmake", "--install", args.build, "--prefix", prefix])
    binary = os.path.join(prefix, "bin", "swprof")
    man = os.path.join(prefix, "share", "man", "man1", "swprof.1.gz")
    completion = os.path.join(prefix, "share", "bash-completion", "completions", "swprof")
    for path in (binary, man, completion):
        expect(os.path.exists(path), "cmake --install put %s in place" % os.path.relpath(path, prefix))
    version = run([binary, "--version"]).stdout.strip()
    expect(re.match(r"^swprof \d+\.\d+\.\d+$", version), "--version: %r" % version)
    print("ok: cmake --install: bin/swprof (%s), share/man/man1/swprof.1.gz, share/bash-completion/completions/swprof" % version)
    if shutil.which("man"):
        page = run(["man", "-l", man], env=dict(os.environ, MANPAGER="cat", MANWIDTH="100")).stdout
        for word in SUBCOMMANDS + ["pprof", "speedscope", "chrome", "skywalking", "collapsed", "--per-segment", "--diff"]:
            expect(word in page, "the man page mentions %s" % word)
        print("ok: man renders the installed page; it lists every subcommand and export format")
    else:
        print("note: man not installed here (apt-get install man-db): the page's rendering is checked in the deb part")
    test_completion(binary, completion, tmp)


def mirror():
    """The Debian mirror this machine's apt uses (so the scratch root installs from the same place)."""
    for path in ["/etc/apt/sources.list"] + glob.glob("/etc/apt/sources.list.d/*.sources") + glob.glob("/etc/apt/sources.list.d/*.list"):
        try:
            text = open(path).read()
        except OSError:
            continue
        m = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+bookworm", text, re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def bookworm_root(tmp):
    """A fresh bookworm (minbase, with man-db) at tmp/root, from the cached tarball or debootstrap."""
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "swprof")
    tarball = os.path.join(cache, "bookworm-minbase-man-db.tar")
    root = os.path.join(tmp, "root")
    if not os.path.exists(tarball):
        os.makedirs(cache, exist_ok=True)
        fresh = os.path.join(tmp, "bootstrap")
        print("debootstrap --variant=minbase --include=man-db bookworm (from %s), cached in %s" % (mirror(), tarball))
        run(["debootstrap", "--variant=minbase", "--include=man-db", "bookworm", fresh, mirror()], timeout=900)
        run(["tar", "-C", fresh, "-cf", tarball + ".part", "."])
        os.rename(tarball + ".part", tarball)
        shutil.rmtree(fresh, ignore_errors=True)
    os.makedirs(root)
    run(["tar", "-C", root, "-xf", tarball])
    shutil.copy("/etc/resolv.conf", os.path.join(root, "etc", "resolv.conf"))  # apt fetches from the mirror
    return root


def part_deb(args, tmp):
    if os.geteuid() != 0:
        print("SKIP: installing into a chroot needs root")
        sys.exit(SKIP)
    missing = [tool for tool in ("cpack", "dpkg-shlibdeps", "debootstrap", "chroot") if not shutil.which(tool)]
    if missing:
        print("SKIP: %s not installed (apt-get install cmake dpkg-dev debootstrap)" % ", ".join(missing))
        sys.exit(SKIP)
    out = os.path.join(tmp, "package")
    os.makedirs(out)
    run(["cpack", "-G", "DEB", "--config", os.path.join(args.build, "CPackConfig.cmake"), "-B", out])
    debs = glob.glob(os.path.join(out, "swprof_*.deb"))
    expect(len(debs) == 1, "cpack made one .deb: %s" % os.listdir(out))
    deb = debs[0]
    depends = run(["dpkg-deb", "-f", deb, "Depends"]).stdout.strip()
    for lib in ("libc6", "libstdc++6", "libprotobuf32", "libzstd1", "zlib1g", "libfmt9"):
        expect(lib in depends, "Depends names %s (from the linked shared libraries): %s" % (lib, depends))
    contents = run(["dpkg-deb", "-c", deb]).stdout
    for path in ("./usr/bin/swprof", "./usr/share/man/man1/swprof.1.gz", "./usr/share/bash-completion/completions/swprof"):
        expect(path in contents, "the package holds %s" % path)
    print("ok: %s (%d KiB), Depends: %s" % (os.path.basename(deb), os.path.getsize(deb) // 1024, depends))

    root = bookworm_root(tmp)
    chroot = lambda *argv, **kw: run(["chroot", root] + list(argv), env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                                          "DEBIAN_FRONTEND": "noninteractive", "LANG": "C"}, **kw)
    expect(not os.path.exists(os.path.join(root, "usr", "lib", "x86_64-linux-gnu", "libprotobuf.so.32")),
           "the fresh root has no protobuf yet: apt must bring it")
    shutil.copy(deb, os.path.join(root, "tmp", "swprof.deb"))
    chroot("apt-get", "update", "-q")
    installed = chroot("apt-get", "install", "-y", "-q", "/tmp/swprof.deb")
    pulled = re.findall(r"^Unpacking (\S+)", installed.stdout, re.M)
    print("ok: apt-get install ./swprof.deb in a fresh bookworm, unpacking %s" % ", ".join(pulled))
    version = chroot("swprof", "--version").stdout.strip()
    expect(re.match(r"^swprof \d+\.\d+\.\d+$", version), "swprof --version in the root: %r" % version)
    page = chroot("man", "swprof", timeout=120).stdout
    expect("swprof" in page and "speedscope" in page and "pprof" in page, "man swprof in the root:\n" + page[:500])
    print("ok: in the root: %s; man swprof renders (%d lines)" % (version, len(page.splitlines())))
    offered = chroot("bash", "-c", "source /usr/share/bash-completion/completions/swprof; COMP_WORDS=(swprof exp); "
                     "COMP_CWORD=1; _swprof; echo ${COMPREPLY[*]}").stdout.strip()
    expect(offered == "export", "the installed completion: %r" % offered)
    chroot("apt-get", "remove", "-y", "-q", "swprof")
    expect(not os.path.exists(os.path.join(root, "usr", "bin", "swprof")), "apt-get remove takes the binary away")
    print("ok: the completion works in the root; apt-get remove swprof cleans up")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="the CMake build directory")
    parser.add_argument("--part", choices=["install", "deb"], required=True)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="swprof-install-")
    try:
        (part_install if args.part == "install" else part_deb)(args, tmp)
    except AssertionError as e:
        print("FAIL: %s" % e)
        print("(scratch files kept in %s)" % tmp)
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
