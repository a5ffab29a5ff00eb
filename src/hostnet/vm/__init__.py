"""VM host networking: the typed model of ``[[vm]]`` links, a pure planner producing link
steps (taps, addresses, /32 and /128 routes, per-address proxy neighbour entries) and the QEMU
arguments that match them. Writes live in ``hostnet.state.links``, reads in
``hostnet.observe.links``."""
