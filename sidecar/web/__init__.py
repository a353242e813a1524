"""
The HTTP status API.
"""
