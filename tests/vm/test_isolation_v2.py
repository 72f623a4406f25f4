"""The isolation probe of tests/sandbox/test_isolation.py, on cgroup v2 (same tests, in the VM)."""

from sandbox.test_isolation import (
    test_isolation_facts,
    test_mountinfo_shows_no_host_paths_and_no_host_packages,
    test_seccomp_blocks_namespace_clone,
)

__all__ = [
    "test_isolation_facts",
    "test_mountinfo_shows_no_host_paths_and_no_host_packages",
    "test_seccomp_blocks_namespace_clone",
]
