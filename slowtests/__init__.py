"""
Slow tests, run by C{tox -e slow} (and CI), not by the default suite: the
ten-minute soaks beside the real Go Sidecar.
"""
