"""Bash completion (data/bash-completion/ligero), driven the way bash drives it.

bash-completion's framework and our file are sourced in `bash -c`; COMP_WORDS, COMP_CWORD,
COMP_LINE and COMP_POINT are set as bash sets them for a command line (words split at blanks and
at the word-break characters = and :), _ligero is called and COMPREPLY is read back.
Oracles: what `ligero --help`, `ligero GROUP --help` and `ligero GROUP VERB --help` list (so the
completion cannot fall behind the binary), files this test made, and a filesystem image built by
mkfs.ext4 -d from a tree this test wrote (for paths inside a guest disk).
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_cmd

# the completion script is under test, the binary runs for its --help texts: CI's ASan/UBSan
# pass leaves this out
pytestmark = pytest.mark.no_asan

COMPLETION = REPO / "data" / "bash-completion" / "ligero"
FRAMEWORK = Path("/usr/share/bash-completion/bash_completion")

DRIVER = r"""
source "$FRAMEWORK" || exit 90
source "$COMPLETION" || exit 91
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_ligero "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\0' "${COMPREPLY[@]}"
"""


def split_words(line):
    """COMP_WORDS as bash makes them: blanks separate words (outside quotes and backslash
    escapes), and each run of the break characters = and : is a word of its own."""
    words, cur, quote, i = [], "", None, 0
    while i < len(line):
        c = line[i]
        if quote:
            cur += c
            if c == quote:
                quote = None
        elif c == "\\" and i + 1 < len(line):
            cur += line[i:i + 2]
            i += 1
        elif c in "'\"":
            cur += c
            quote = c
        elif c in " \t":
            if cur:
                words.append(cur)
            cur = ""
        elif c in "=:":
            if cur and cur[-1] not in "=:":
                words.append(cur)
                cur = ""
            cur += c
            if i + 1 >= len(line) or line[i + 1] not in "=:":
                words.append(cur)
                cur = ""
        else:
            if cur and cur[-1] in "=:":
                words.append(cur)
                cur = ""
            cur += c
        i += 1
    words.append(cur)  # the word at the cursor, empty after a blank
    return words


@pytest.fixture(scope="module")
def complete(ligero, tmp_path_factory):
    """complete(line, cwd=None) -> COMPREPLY for the cursor at the end of line."""
    if not FRAMEWORK.exists():
        pytest.skip("bash-completion is not installed (apt-get install bash-completion)")
    bindir = tmp_path_factory.mktemp("bin")
    (bindir / "ligero").symlink_to(ligero)

    def run(line, cwd=None):
        env = dict(os.environ, FRAMEWORK=str(FRAMEWORK), COMPLETION=str(COMPLETION),
                   PATH=f"{bindir}:{os.environ['PATH']}", COMP_LINE=line,
                   COMP_POINT=str(len(line)))
        p = subprocess.run(["bash", "-c", DRIVER, "bash", *split_words(line)], cwd=cwd,
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stderr == "", p.stderr
        return [w for w in p.stdout.split("\0") if w]
    return run


def help_text(ligero, *cmd):
    p = run_cmd(ligero, *cmd, "--help")
    if p.returncode != 0:  # some verbs' parsers know only -h
        p = run_cmd(ligero, *cmd, "-h", check=True)
    return p.stdout


def groups(ligero):
    """The command groups `ligero --help` lists (help and version are no groups)."""
    text = help_text(ligero).split("groups:")[1]
    return [g for g in re.findall(r"^  ([a-z]+) ", text, re.M) if g not in ("help", "version")]


def verbs(ligero, group):
    """The verbs `ligero GROUP --help` lists; none for a group that is one command (run)."""
    text = help_text(ligero, group)
    if "verbs:" not in text:
        return []
    return re.findall(r"^  ([a-z][a-z-]*)\b", text.split("verbs:")[1], re.M)


def commands(ligero):
    """Every command: (group, verb) for groups with verbs, (group,) for the others."""
    out = []
    for g in groups(ligero):
        out += [(g, v) for v in verbs(ligero, g)] or [(g,)]
    return out


def usage_options(ligero, *cmd):
    usage = help_text(ligero, *cmd).split("\ncommands")[0]  # img io: qemu-io's commands follow, not options
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", usage))


def test_split_words_like_bash():
    assert split_words("ligero img info --output=j") == ["ligero", "img", "info", "--output",
                                                          "=", "j"]
    assert split_words("ligero fs cat d.img:2 /e") == ["ligero", "fs", "cat", "d.img", ":", "2",
                                                       "/e"]
    assert split_words("ligero fs ls d.img /a\\ b ") == ["ligero", "fs", "ls", "d.img",
                                                         "/a\\ b", ""]


def test_groups(ligero, complete):
    got = complete("ligero ")
    for g in groups(ligero):
        assert g in got
    assert {"--help", "--version", "help"} <= set(got)
    assert complete("ligero sp") == ["sparsify"]


def test_verbs_are_the_groups_verbs(ligero, complete):
    checked = 0
    for group in groups(ligero):
        listed = verbs(ligero, group)
        if listed:
            assert sorted(complete(f"ligero {group} ")) == sorted(listed + ["--help"])
            checked += len(listed)
    assert checked >= 28  # img and fs at least
    assert sorted(complete("ligero img co")) == ["commit", "compare", "convert"]
    assert sorted(complete("ligero help ")) == sorted(groups(ligero))
    assert sorted(complete("ligero help img c")) == ["check", "commit", "compare", "convert",
                                                     "create"]


def test_every_option_of_every_verb_is_offered(ligero, complete):
    checked = 0
    for cmd in commands(ligero):
        offered = {o.rstrip("=") for o in complete("ligero " + " ".join(cmd) + " -")}
        want = usage_options(ligero, *cmd) - {"-h"}
        assert want <= offered, f"{cmd}: not offered: {sorted(want - offered)}"
        assert "--help" in offered and all(o.startswith("-") for o in offered)
        checked += len(want)
    assert checked > 100  # the usage lines were read
    # fs verbs all take --disk and --part (DISK given by name).
    assert {"--disk=", "--part="} <= set(complete("ligero fs cat --"))


def test_option_values(complete):
    assert sorted(complete("ligero img convert -O ")) == ["qcow2", "raw"]
    assert sorted(complete("ligero img create -f q")) == ["qcow2"]
    assert sorted(complete("ligero img info -f ")) == ["parallels", "ploop", "qcow2", "raw"]
    assert sorted(complete("ligero img create -f ")) == ["qcow2", "raw"]
    assert sorted(complete("ligero img info --output=")) == ["human", "json"]
    assert complete("ligero img info --output=j") == ["json"]
    assert sorted(complete("ligero img info --output ")) == ["human", "json"]
    assert sorted(complete("ligero img check -r ")) == ["all", "leaks"]
    assert sorted(complete("ligero img io -t ")) == ["directsync", "none", "unsafe",
                                                     "writeback", "writethrough"]
    assert "cluster_size=" in complete("ligero img create -o ")
    assert sorted(complete("ligero img amend -o ")) == ["compat=", "lazy_refcounts="]
    assert sorted(complete("ligero run --net ")) == ["bridge=", "tap="]
    assert sorted(complete("ligero run --output=")) == ["human", "json"]  # --list-boot-entries
    assert complete("ligero run --repair=") == []  # not an option of run
    assert "--output=" in complete("ligero sparsify --ou")


@pytest.fixture
def files(tmp_path):
    for name in ("a.qcow2", "b.img", "c.raw", "notes.txt", "vmlinuz"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    return tmp_path


def test_image_files_where_an_image_is_expected(complete, files):
    images = ["a.qcow2", "b.img", "c.raw", "sub"]
    assert sorted(complete("ligero img info ", files)) == images
    assert sorted(complete("ligero img info --output=json ", files)) == images
    assert complete("ligero img info a", files) == ["a.qcow2"]
    assert sorted(complete("ligero img convert -O qcow2 a.qcow2 ", files)) == images
    assert sorted(complete("ligero img create -f qcow2 -b ", files)) == images
    assert complete("ligero img create -f qcow2 new.qcow2 ", files) == []  # SIZE
    assert sorted(complete("ligero sparsify --in-place ", files)) == images
    assert sorted(complete("ligero fs list ", files)) == images
    assert sorted(complete("ligero run --disk ", files)) == images
    # Any file where any file will do.
    assert "vmlinuz" in complete("ligero run --kernel ", files)
    assert sorted(complete("ligero run --console ", files))[0:1] == ["a.qcow2"]
    assert "stdio" in complete("ligero run --console ", files)
    assert complete("ligero fs umount ", files) == ["sub"]
    # After --, an operand that starts with '-' is a file, not an option.
    (files / "-odd.qcow2").write_bytes(b"")
    assert complete("ligero img info -- -", files) == ["-odd.qcow2"]


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    """An ext4 image made by mkfs.ext4 -d from a tree written here, and that tree."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed (e2fsprogs)")
    d = tmp_path_factory.mktemp("guest")
    tree = d / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "os-release").write_text("ID=debian\n")
    (tree / "etc" / "hostname").write_text("vm\n")
    (tree / "with space").mkdir()
    (tree / "with space" / "f").write_text("x")
    (tree / "link").symlink_to("/etc")
    disk = d / "disk.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(disk), "16M"], check=True,
                   capture_output=True)
    return disk


def test_paths_inside_the_guest(complete, guest):
    cwd = guest.parent
    root = complete("ligero fs ls disk.img /", cwd)
    assert sorted(root) == ["/etc/", "/link", "/lost+found/", "/with\\ space/"]
    assert complete("ligero fs cat disk.img /e", cwd) == ["/etc/"]
    assert sorted(complete("ligero fs cat disk.img /etc/", cwd)) == ["/etc/hostname",
                                                                    "/etc/os-release"]
    assert complete("ligero fs cat disk.img /etc/o", cwd) == ["/etc/os-release"]
    assert complete("ligero fs ls disk.img /with\\ s", cwd) == ["/with\\ space/"]
    assert complete("ligero fs cat disk.img /with\\ space/", cwd) == ["/with\\ space/f"]
    assert complete("ligero fs cat disk.img ", cwd) == ["/"]
    # The disk named by --disk, options before the path, and every later path too.
    assert complete("ligero fs ls --disk disk.img /e", cwd) == ["/etc/"]
    assert complete("ligero fs cat /etc/hostname --disk=disk.img /e", cwd) == ["/etc/"]
    assert complete("ligero fs ls -l disk.img /e", cwd) == ["/etc/"]
    assert complete("ligero fs rm -r disk.img /etc/hostname /e", cwd) == ["/etc/"]
    # chmod MODE and chown UID are no paths; what follows them is.
    assert complete("ligero fs chmod disk.img ", cwd) == []
    assert complete("ligero fs chmod disk.img 0644 /e", cwd) == ["/etc/"]
    # A disk that is no image gives nothing, and no error on the terminal.
    assert complete("ligero fs cat nosuch.img /e", cwd) == []


def test_paths_inside_a_partition(complete, guest, tmp_path):
    """DISK:N, which bash splits at ':' into three words."""
    if shutil.which("sfdisk") is None:
        pytest.skip("sfdisk is not installed (fdisk)")
    disk = tmp_path / "gpt.img"
    subprocess.run(["truncate", "-s", "24M", str(disk)], check=True)
    subprocess.run(["sfdisk", "-q", str(disk)], input=b"label: gpt\nstart=2048, size=16MiB\n",
                   check=True, capture_output=True)
    with open(guest, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(2048 * 512)
        shutil.copyfileobj(src, dst)
    assert complete("ligero fs cat gpt.img:1 /e", tmp_path) == ["/etc/"]
    assert complete("ligero fs cat gpt.img:1 /etc/h", tmp_path) == ["/etc/hostname"]
