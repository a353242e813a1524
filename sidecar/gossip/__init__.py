"""
Gossip: the SWIM cluster on the HashiCorp memberlist wire protocol (0.2.2,
protocol versions 2-5), with the Go Sidecar fork's C{ClusterName}.
"""
