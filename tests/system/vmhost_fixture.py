"""The `vmhost` fixture lives in conftest.py; this keeps `from vmhost_fixture import vmhost` working
and puts tests/vmhost on sys.path for `import vmhost`."""
from conftest import vmhost  # noqa: F401
