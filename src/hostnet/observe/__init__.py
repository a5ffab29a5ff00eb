"""The only code that turns host reads into a HostState (kept light: import the modules).

* :mod:`hostnet.observe.host` -- ``observe(root, netns=..., want=Want(...)) -> HostState``
* :mod:`hostnet.observe.netns` -- one namespace, and ``Want`` (what the caller asks for)
* :mod:`hostnet.observe.registry` -- every file and command hostnet may read
* :mod:`hostnet.observe.roots` -- the live host, a host tree or a snapshot to read
* :mod:`hostnet.observe.collect` -- ``hostnet collect``: store exactly the registry
"""
