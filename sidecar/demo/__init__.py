"""
A three-node cluster on one machine's loopback addresses, with real
HAProxies and real services, that plays the product's story: routing
around an unhealthy instance, a killed node and a drained instance.
C{python -m sidecar.demo} (or C{examples/cluster-demo}) runs it; the
end-to-end test runs the same story and asserts on what it measured.
"""
