"""
The local HAProxy: what it should do (the model), its configuration (a
jinja2 template), and keeping a running HAProxy in step with the catalog.
"""
