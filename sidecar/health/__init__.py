"""
Health checking: checkers, the status each service's results lead to, and
the monitor that runs them between discovery and the catalog.
"""
