"""Orchestration and long-running loops: observe the host, judge it, keep history, serve.

The doctor run, the watch engine, the Prometheus exporter and the VM link watcher live here;
cli/ only parses options, calls one of these and renders.
"""
