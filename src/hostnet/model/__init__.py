"""Typed records of what hostnet observes (no I/O): sysctl reads, interfaces, routes,
listeners, the firewall rules that matter, conntrack readings, and the HostState they make up.

Everything below model/ may import it; model/ imports nothing of hostnet but errors/findings.
"""
