"""The engine over HTTP: ``server`` is ``nst-core serve`` (one warm engine, a bounded queue of jobs),
``client`` sends a ``nst-core stylize --server`` job to it, ``token`` is the key both share.
The HTTP API is docs/PROTOCOL.md's *HTTP transport*; running it, docs/SERVICE.md.
"""
