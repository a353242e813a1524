from setuptools import find_packages, setup

setup(
    name="sidecar",
    version="0.1.0",
    description="Peer-to-peer service discovery on Twisted: gossip, health checks, HAProxy.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # Every package at the top of the checkout: an editable install then puts
    # the checkout itself on sys.path, where twisted finds twisted/plugins/.
    package_dir={"": "."},
    packages=find_packages(include=["sidecar", "sidecar.*"]) + ["twisted.plugins"],
    package_data={
        "twisted": ["plugins/sidecar_plugin.py"],
        "sidecar.proxy": ["haproxy.cfg.j2"],
        "sidecar.web": ["ui/*"],
    },
    include_package_data=True,
    install_requires=[
        "twisted>=23.10",
        "treq>=23.11",
        "docker>=7.0",
        "jinja2>=3.1",
        "zope.interface>=6.0",
        "service-identity>=23.1",
        "msgpack>=1.0",
        "cryptography>=42",
        # /metrics: the Prometheus project's own client.
        "prometheus_client>=0.20",
        # [envoy]: the xDS v3 control plane; gRPC's server, and Envoy's API
        # as generated Python (imported only when [envoy] is enabled).
        "grpcio>=1.60",
        "xds-protos>=1.60",
    ],
    extras_require={
        # websockets: the browser test drives chromium over its DevTools
        # protocol.
        "test": ["hypothesis>=6.100", "websockets>=12"],
        "lint": ["ruff>=0.5", "mypy>=1.10", "mypy-zope>=1.0"],
    },
    entry_points={"console_scripts": ["sidecar = sidecar.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
    ],
)
