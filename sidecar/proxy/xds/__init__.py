"""
The xDS v3 control plane: the proxy model (L{sidecar.proxy.model}) as
Envoy's resources, served over gRPC's aggregated discovery service to
Envoy and to proxyless gRPC clients.  Imported only when C{[envoy]} is
enabled: it loads C{grpc} and Envoy's generated API.
"""
