"""Keep pytest out of this folder: ``run.py`` is a script that runs pytest itself (on mutated
copies of the package), not a test module, and must never run inside the test suite."""

collect_ignore_glob = ["*.py"]
