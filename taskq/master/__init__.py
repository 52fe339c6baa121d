"""What runs in ``taskq master``: the broker served to peers (``broker``, ``broker_prims``,
``broker_views``, behind ``owned``'s checks), its journal (``journal/``), the web page and
metrics (``http``, ``metrics``, ``web/``), and the pure state under it all (``state/``: no
I/O, no threads, checked against a model). Never imported by a client or a worker."""
