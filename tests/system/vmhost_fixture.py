"""pytest fixture for VMM tests: `vmhost` runs shell text inside the emulated host (a QEMU/TCG
machine with a real, nested KVM) and returns a VmhostResult. Import it into a test module:
    from vmhost_fixture import vmhost  # noqa: F401
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vmhost"))
import vmhost as _vmhost  # noqa: E402


@pytest.fixture(scope="session")
def vmhost():
    why = _vmhost.missing()
    if why:
        pytest.skip(why)
    try:
        _vmhost.build_guest()
    except RuntimeError as e:
        pytest.skip(str(e))
    return _vmhost.run
