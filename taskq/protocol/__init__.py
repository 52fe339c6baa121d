"""What crosses a process boundary: the messages and their bodies (``messages``, ``bodies``:
the only cloudpickle importer), the broker's interface declared once (``api``, ``calls``),
the replies, options, names and claims, the version hello, the restricted loader and the
frames. Imports only the leaves (``errors``, ``defaults``, ``logs``): no sockets, no threads."""
