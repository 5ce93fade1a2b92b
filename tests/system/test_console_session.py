"""tests/guest/console-session.sh, the person at the serial console in the emulated-host boot
tests (test_disk_boot's vm2): run here against a stand-in for `ligero run` that behaves as the
Debian test guest's console does, a shell prompt from the autologin and, with --after, the test
service that takes the console over (it stops the getty, prints LIGERO-TEST-RC=N, starts the
getty again, and what is typed before the new shell is there is lost, as agetty flushes the
line). The oracle is what the stand-in says it received and ran. No assertion on time: the
waits are hang guards."""
import subprocess
import sys
from pathlib import Path

import pytest

# a shell script under test, no binary of the build: CI's ASan/UBSan pass leaves it out
pytestmark = pytest.mark.no_asan

SESSION = Path(__file__).resolve().parents[1] / "guest" / "console-session.sh"
HANG = 120  # seconds: a hang guard for the session

# The stand-in VM: stdin is the console's input, stdout its output. With "service" as its
# argument it plays the test service's take-over between the first prompt and the second.
STAND_IN = r'''
import os, sys, time
ran = open("ran.txt", "w")
def say(s):
    sys.stdout.write(s)
    sys.stdout.flush()
say("debian login: root (automatic login)\nroot@debian:~# ")
if sys.argv[1] == "service":
    time.sleep(0.3)
    say("\nLIGERO-TEST-BEGIN\nLIGERO-TEST-RC=0\n")
    # the getty starts again: it flushes what was typed meanwhile
    os.set_blocking(0, False)
    end = time.time() + 3
    while time.time() < end:
        try:
            lost = os.read(0, 65536)
            if lost:
                ran.write("lost: " + lost.decode().replace("\n", "|") + "\n")
                ran.flush()
        except BlockingIOError:
            pass
        time.sleep(0.05)
    os.set_blocking(0, True)
    say("debian login: root (automatic login)\nroot@debian:~# ")
buf = b""
n = 0
while n < 2:
    chunk = os.read(0, 4096)
    if not chunk:
        sys.exit(3)
    buf += chunk
    while b"\n" in buf and n < 2:
        line, buf = buf.split(b"\n", 1)
        n += 1
        ran.write("ran: " + line.decode() + "\n")
        ran.flush()
        say(line.decode() + "\n" + "out " + str(n) + "\nroot@debian:~# ")
sys.exit(0)
'''


def session(tmp_path, mode, *opts):
    (tmp_path / "vm.py").write_text(STAND_IN)
    return subprocess.run(
        ["sh", str(SESSION), "--guard", "60", "--log", str(tmp_path / "console.log"), *opts,
         "--type", "echo one", "--type", "echo two", "--",
         sys.executable, str(tmp_path / "vm.py"), mode],
        cwd=tmp_path, capture_output=True, text=True, timeout=HANG)


def test_lines_typed_at_each_prompt(tmp_path):
    r = session(tmp_path, "plain")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ran.txt").read_text() == "ran: echo one\nran: echo two\n"
    assert "session: typing: echo one" in r.stderr


def test_after_waits_for_the_prompt_that_follows_it(tmp_path):
    """The first line goes in at the first prompt after LIGERO-TEST-RC, not at the prompt
    already on the console (the old behaviour typed it while the getty restarted, and it was
    lost: a failure seen in a CI run under load)."""
    r = session(tmp_path, "service", "--after", "^LIGERO-TEST-RC=")
    assert r.returncode == 0, r.stderr + (tmp_path / "ran.txt").read_text()
    assert (tmp_path / "ran.txt").read_text() == "ran: echo one\nran: echo two\n"
    log = (tmp_path / "console.log").read_text()
    assert log.index("LIGERO-TEST-RC=0") < log.index("out 1") < log.index("out 2")


def test_a_vm_that_ends_before_the_lines_is_status_124(tmp_path):
    (tmp_path / "vm.py").write_text("print('no prompt here')\n")
    r = subprocess.run(
        ["sh", str(SESSION), "--guard", "60", "--type", "echo one", "--",
         sys.executable, str(tmp_path / "vm.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=HANG)
    assert r.returncode == 124
    assert "the VM ended (status 0) before its shell prompt came back" in r.stderr
