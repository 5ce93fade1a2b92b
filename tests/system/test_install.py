"""`meson install` gives a tree a package could ship, and `ligero --version` names the build.

Oracles: `meson introspect --installed` (what meson promises, checked by .ci/install-check.sh),
the repository's own files (the installed completion and docs are byte for byte the sources),
and git itself for the revision (`git rev-parse`), with a build from a `git archive` export for
the version outside a checkout.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_cmd

BUILD = Path(os.environ.get("LIGERO_BUILD") or REPO / "build")
SCRIPT = REPO / ".ci" / "install-check.sh"


def project_version():
    info = json.loads(run_cmd("meson", "introspect", BUILD, "--projectinfo", check=True).stdout)
    return info["version"]


def git(*args, cwd=REPO):
    return run_cmd("git", "-C", cwd, *args)


def in_git_checkout():
    if shutil.which("git") is None:
        return False
    p = git("rev-parse", "--show-toplevel")
    return p.returncode == 0 and Path(p.stdout.strip()).resolve() == REPO.resolve()


@pytest.fixture(scope="module")
def installed(ligero, tmp_path_factory):
    if not (BUILD / "build.ninja").exists():
        pytest.skip(f"no meson build in {BUILD} (set LIGERO_BUILD)")
    dest = tmp_path_factory.mktemp("install") / "dest"
    p = run_cmd("bash", SCRIPT, dest, BUILD, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "install-check: " in p.stdout
    prefix = json.loads(run_cmd("meson", "introspect", BUILD, "--buildoptions",
                                check=True).stdout)
    opts = {o["name"]: o["value"] for o in prefix}
    return dest / opts["prefix"].lstrip("/"), opts


def test_installed_tree(installed, ligero):
    root, opts = installed
    binary = root / opts["bindir"] / "ligero"
    assert os.access(binary, os.X_OK)
    assert run_cmd(binary, "--version").stdout == run_cmd(ligero, "--version").stdout
    comp = list(root.glob("share/**/bash-completion/completions/ligero"))
    assert len(comp) == 1
    assert comp[0].read_bytes() == (REPO / "data/bash-completion/ligero").read_bytes()
    docdir = root / opts["datadir"] / "doc" / "ligero"
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        assert (docdir / doc.name).read_bytes() == doc.read_bytes(), doc.name
    if (BUILD / "docs/man/ligero.1").exists():
        pages = sorted(p.name for p in (root / opts["mandir"] / "man1").glob("*.1"))
        built = sorted(p.name for p in (BUILD / "docs/man").glob("*.1"))
        assert pages == built and "ligero-img.1" in pages


def test_install_check_refuses_a_used_destdir(tmp_path):
    (tmp_path / "old").write_text("x")
    p = run_cmd("bash", SCRIPT, tmp_path, BUILD)
    assert p.returncode == 1 and "is not empty" in p.stderr
    assert sorted(os.listdir(tmp_path)) == ["old"]


def test_version_names_the_git_revision(ligero):
    if not in_git_checkout():
        pytest.skip(f"{REPO} is not a git checkout")
    rev = git("rev-parse", "--short=7", "HEAD").stdout.strip()
    dirty = git("diff", "--quiet", "HEAD").returncode != 0
    want = f"ligero {project_version()} (git {rev}{'-dirty' if dirty else ''})\n"
    got = run_cmd(ligero, "--version").stdout
    assert got == want, "rebuild first: the revision is taken when ninja runs"
    assert run_cmd(ligero, "version").stdout == want


@pytest.mark.no_asan  # it builds its own ligero: nothing of the sanitized build runs
def test_version_outside_a_git_checkout(tmp_path):
    """A source tree that is no git checkout (an export, unpacked inside some other repository
    to make sure that one is not taken for ours) builds, and says its version alone."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    outer = tmp_path / "outer"
    src = outer / "ligero-export"
    src.mkdir(parents=True)
    run_cmd("git", "init", "-q", outer, check=True)
    if in_git_checkout():
        archive = subprocess.run(["git", "-C", REPO, "archive", "HEAD"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    else:
        shutil.copytree(REPO, src, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("build*", ".git"))
    # The script itself: no revision anywhere above, or only another repository's.
    plain = tmp_path / "plain"
    shutil.copytree(src / "src" / "cli", plain)
    for d in (plain, src):
        assert run_cmd("sh", src / "src/cli/version.sh", d, "9.9").returncode != 0
    assert run_cmd("sh", src / "src/cli/version.sh", REPO, "9.9").stdout.startswith(
        "9.9 (git ") or not in_git_checkout()

    build = tmp_path / "build"
    run_cmd("meson", "setup", build, src, "--buildtype=plain", "-Dtests=disabled",
            "-Dman=disabled", check=True, timeout=600)
    run_cmd("ninja", "-C", build, "ligero", check=True, timeout=1800)
    version = json.loads(run_cmd("meson", "introspect", build, "--projectinfo",
                                 check=True).stdout)["version"]
    assert run_cmd(build / "ligero", "--version").stdout == f"ligero {version}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
