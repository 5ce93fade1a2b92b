"""The manual pages (docs/man/*.scd, built by scdoc) against man(1) and the binary itself.

Oracles: `man --warnings` (groff's own checks of the built pages), the rendered pages that man
prints, and what `ligero --help`, `ligero GROUP --help` and `ligero GROUP VERB --help` say, so
a page cannot fall behind a group, a verb or an option the binary has. `ligero help` is checked
against the rendered SYNOPSIS of the page it was generated from.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_cmd

# the pages are under test, the binary runs for its --help texts: CI's ASan/UBSan pass leaves
# this out
pytestmark = pytest.mark.no_asan

BUILD = Path(os.environ.get("LIGERO_BUILD") or REPO / "build")
MAN_DIR = BUILD / "docs" / "man"


@pytest.fixture(scope="module", autouse=True)
def pages_built():
    if shutil.which("man") is None:
        pytest.skip("man is not installed (apt-get install man-db)")
    if not (MAN_DIR / "ligero.1").exists():
        pytest.skip(f"no manual pages in {MAN_DIR}: install scdoc and reconfigure (-Dman=enabled)")


def man(page, width=400):
    """Rendered text of a built page: wide and without hyphenation, so words stay whole."""
    env = dict(os.environ, MANWIDTH=str(width), LC_ALL="C.UTF-8", MANROFFOPT="-rHY=0")
    p = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def sections(text):
    """{heading: body} of a rendered page; subsections ("   create") as "SECTION/create"."""
    out, sec, sub = {}, None, None
    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Z ]+$", line):
            sec, sub = line.strip(), None
            out[sec] = ""
        elif re.match(r"^   \S", line) and sec:
            sub = line.strip()
            out[f"{sec}/{sub}"] = ""
        elif sec:
            out[sec if sub is None else f"{sec}/{sub}"] += line + "\n"
            if sub is not None:
                out[sec] += line + "\n"
    return out


def groups(ligero):
    """Command groups listed by `ligero --help` (not help and version, which are no group)."""
    text = run_cmd(ligero, "--help", check=True).stdout
    names = re.findall(r"^  ([a-z]+) ", text.split("groups:")[1], re.M)
    return [g for g in names if g not in ("help", "version")]


def verbs(ligero, group):
    """The verbs `ligero GROUP --help` lists; none for a group that is one command (run)."""
    text = run_cmd(ligero, group, "--help", check=True).stdout
    if "verbs:" not in text:
        return []
    return re.findall(r"^  ([a-z][a-z-]*)\b", text.split("verbs:")[1], re.M)


def verb_help(ligero, *cmd):
    """`ligero CMD --help`, or `-h` for the verbs whose parser knows only that one."""
    p = run_cmd(ligero, *cmd, "--help")
    if p.returncode != 0:
        p = run_cmd(ligero, *cmd, "-h", check=True)
    return p.stdout


def usage_options(ligero, *cmd):
    """Options named in `ligero CMD --help` (for img io, up to qemu-io's command list)."""
    text = verb_help(ligero, *cmd)
    usage = text.split("\ncommands")[0]
    return sorted(set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", usage)))


def test_every_page_renders_without_warnings():
    pages = sorted(MAN_DIR.glob("*.1"))
    assert len(pages) >= 5
    for page in pages:
        for width in (80, 60):
            env = dict(os.environ, MANWIDTH=str(width), LC_ALL="C.UTF-8")
            p = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True,
                               text=True, env=env, timeout=60)
            assert p.returncode == 0 and p.stderr == "", f"{page.name} at {width}: {p.stderr}"
            assert "NAME" in p.stdout and "SYNOPSIS" in p.stdout


def test_a_warning_would_be_seen(tmp_path):
    """The check above can fail: a page with a roff mistake makes man --warnings speak."""
    bad = tmp_path / "bad.1"
    bad.write_text('.TH "bad" "1"\n.SH NAME\nbad \\- x\n.SH SYNOPSIS\n\\fBbad\n.xyzzy\n')
    p = subprocess.run(["man", "--warnings", "-l", str(bad)], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="80"), timeout=60)
    assert p.stderr != ""


def test_every_group_has_a_page_with_the_usual_sections(ligero):
    for name in ["ligero"] + [f"ligero-{g}" for g in groups(ligero)]:
        page = MAN_DIR / f"{name}.1"
        assert page.exists(), f"{name}(1) is missing: add docs/man/{name}.1.scd"
        s = sections(man(page))
        for sec in ("NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
            assert sec in s, f"{name}(1) has no {sec} section"
        assert "qemu-img(1)" in s["SEE ALSO"]
        assert s["NAME"].split()[0] == name


def undescribed(options, body):
    return [o for o in options
            if o not in ("-h", "--help") and not re.search(rf"(?<![\w-]){o}(?![\w-])", body)]


def test_every_verb_has_a_section_naming_its_options(ligero):
    checked = 0
    for group in groups(ligero):
        s = sections(man(MAN_DIR / f"ligero-{group}.1"))
        listed = verbs(ligero, group)
        if not listed:  # one command: its options are the page's OPTIONS
            missing = undescribed(usage_options(ligero, group), s["OPTIONS"])
            assert not missing, f"ligero-{group}(1): options of --help not described: {missing}"
            continue
        documented = [k.split("/", 1)[1] for k in s if k.startswith("VERBS/")]
        assert sorted(documented) == sorted(listed), \
            f"ligero-{group}(1): VERBS sections differ from --help's verbs"
        for verb in listed:
            body = s[f"VERBS/{verb}"] + s["DESCRIPTION"]
            missing = undescribed(usage_options(ligero, group, verb), body)
            assert not missing, \
                f"ligero-{group}(1), {verb}: options of --help not described: {missing}"
            checked += 1
    assert checked >= 28  # img and fs at least


def synopsis_paragraphs(group):
    """The rendered SYNOPSIS of ligero-GROUP(1): one string per paragraph (form)."""
    body = sections(man(MAN_DIR / f"ligero-{group}.1"))["SYNOPSIS"]
    return [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]


def help_forms(ligero, *args):
    """The forms `ligero help ARGS` prints, whitespace-normalised, without 'usage:'."""
    p = run_cmd(ligero, "help", *args, check=True)
    text = p.stdout.split("\nSee ")[0]
    forms = []
    for line in text.splitlines():
        # A form starts with "usage: ligero" or "       ligero"; deeper lines continue it.
        if re.match(r"^(usage: | {7})ligero ", line):
            forms.append(line[7:])
        else:
            forms[-1] += " " + line
    return [" ".join(f.split()) for f in forms]


def test_help_shows_the_pages_synopsis(ligero):
    owners = {}
    names = groups(ligero)
    for group in names:
        for verb in verbs(ligero, group):
            owners.setdefault(verb, []).append(group)
    for group in groups(ligero):
        paras = synopsis_paragraphs(group)
        if not verbs(ligero, group):
            assert help_forms(ligero, group) == paras
            continue
        for verb in verbs(ligero, group):
            want = [p for p in paras if p.startswith(f"ligero {group} {verb} ")]
            assert want, f"ligero-{group}(1) SYNOPSIS has no form for {verb}"
            assert help_forms(ligero, group, verb) == want
            if verb in names:
                continue  # `ligero help run` is the run group, not `vm run`
            # `ligero help VERB` finds the group when only one group has the verb.
            if owners[verb] == [group]:
                assert help_forms(ligero, verb) == want
            else:
                p = run_cmd(ligero, "help", verb)
                assert p.returncode == 1 and "several groups" in p.stderr


def test_help_names_the_page_and_refuses_unknown_names(ligero):
    p = run_cmd(ligero, "help", "img", "convert")
    assert p.returncode == 0 and "man ligero-img" in p.stdout and p.stderr == ""
    assert all(len(line) < 80 for line in p.stdout.splitlines() if "--disk" not in line)
    for args, word in ((["nosuch"], "nosuch"), (["img", "nosuch"], "nosuch"),
                       (["run", "x"], "'x'"), (["img", "convert", "x"], "'x'")):
        p = run_cmd(ligero, "help", *args)
        assert p.returncode == 1 and p.stdout == "", args
        assert p.stderr.startswith("ligero: help: ") and word in p.stderr
        assert p.stderr.count("\n") == 1
    # Without arguments: the overview, as --help.
    assert run_cmd(ligero, "help").stdout == run_cmd(ligero, "--help").stdout
