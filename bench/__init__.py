"""OVN Hub benchmarks: ``python -m bench <name> [options]`` (see bench/README.md)."""
