"""
Discovery: finding the services that run on this host.
"""
