"""The vocabulary every layer of labctl speaks, and nothing else: safety limits, programming schemes,
and the reference procedures' values (../shared/reference/cmo-hfox-1t1r.md).

Pure values and small pure functions (numpy, pydantic); no I/O, no C core, no import of another
labctl package. It sits above every layer (docs/architecture.md says why): the protocol codec, the
drivers, the backends, the routines, the TUI and the emulated devices all name a limit, a scheme
setting or a reference value the same way, from here.
"""
