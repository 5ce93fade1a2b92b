#!/usr/bin/env python3
"""Turn the SYNOPSIS sections of the manual pages' scdoc sources into the C table that
`ligero help` prints, so the page and the help text come from one source.

usage: synopsis.py OUT.c PAGE.scd...

In the page ligero-GROUP(1), each paragraph of SYNOPSIS that starts with the bold span
*ligero GROUP VERB* is VERB's synopsis; one that starts with *ligero GROUP* is the synopsis of a
group that is a single command (run, sparsify). A group may give several paragraphs (forms) for
one verb. Any other paragraph there is an error, so a page cannot drift from this rule unseen.
The markup is removed as scdoc reads it (\\x is x, *bold*, _underline_ at word boundaries) and
the text is wrapped to fit 80 columns with the continuation lines under the first argument.
"""
import re
import sys

WIDTH = 80  # lines stay shorter than this


def strip_markup(s):
    """Plain text of an scdoc line, following scdoc's own rules for * _ and \\."""
    out, underline, i = [], False, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
            continue
        if c == "*":
            i += 1
            continue
        if c == "_":
            last = s[i - 1] if i > 0 else " "
            nxt = s[i + 1] if i + 1 < len(s) else " "
            if not last.isalnum() or (underline and not nxt.isalnum()):
                underline = not underline
                i += 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def tokens(text):
    """Split at spaces outside [] and (), so that '[-F fmt]' stays on one line."""
    toks, depth, cur = [], 0, ""
    for c in text:
        if c in "[(":
            depth += 1
        elif c in "])":
            depth = max(0, depth - 1)
        if c == " " and depth == 0:
            if cur:
                toks.append(cur)
            cur = ""
        else:
            cur += c
    if cur:
        toks.append(cur)
    return toks


def wrap(prefix, head, rest):
    """prefix+head, then the tokens of rest, continuation lines indented under rest."""
    indent = " " * (len(prefix) + len(head) + 1)
    lines, line = [], prefix + head
    for tok in tokens(rest):
        if len(line) + 1 + len(tok) >= WIDTH and line.strip() != (prefix + head).strip():
            lines.append(line)
            line = indent + tok
        else:
            line += " " + tok
    lines.append(line)
    return "\n".join(lines) + "\n"


def page_synopses(path):
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if not (l.startswith("; ") or l.rstrip() == ";")]
    m = re.match(r"ligero-([a-z0-9-]+)\(1\)", lines[0])
    if not m:
        return []
    group = m.group(1)
    try:
        start = lines.index("# SYNOPSIS") + 1
    except ValueError:
        sys.exit(f"{path}: no '# SYNOPSIS' section")
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("# ")), len(lines))
    paras, cur = [], []
    for l in lines[start:end] + [""]:
        if l.strip():
            cur.append(l.strip().removesuffix("++").strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    entries = []
    for p in paras:
        b = re.match(r"\*([^*]+)\*", p)
        words = b.group(1).split() if b else []
        if words[:2] != ["ligero", group] or len(words) > 3:
            sys.exit(f"{path}: a SYNOPSIS paragraph must start with *ligero {group}* or "
                     f"*ligero {group} VERB*: {p[:60]}")
        verb = words[2] if len(words) == 3 else ""
        text = " ".join(strip_markup(p[b.end():]).split())
        entries.append((group, verb, " ".join(words), text))
    return entries


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: synopsis.py OUT.c PAGE.scd...")
    table = {}
    for path in sys.argv[2:]:
        for group, verb, head, text in page_synopses(path):
            forms = table.setdefault((group, verb), [])
            forms.append(wrap("usage: " if not forms else "       ", head, text))
    out = ["/* Generated from the .scd files of docs/man by docs/man/synopsis.py: do not edit. */",
           '#include "cli/help.h"', "",
           "const struct help_synopsis help_synopses[] = {"]
    for (group, verb), forms in table.items():
        out.append(f"    {{{c_string(group)}, {c_string(verb)},\n"
                   f"     {c_string(''.join(forms))}}},")
    out += ["};", "const size_t help_nsynopses = sizeof(help_synopses) / sizeof(help_synopses[0]);",
            ""]
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
