"""taskq's benchmark: taskq side by side with its peers on the same workloads.

Run it from the repository root::

    python -m bench                      # every workload on every system (a few minutes)
    python -m bench --quick              # small sizes, a smoke run
    python -m bench --only throughput,latency --systems taskq-memory,processpool

Systems: ``taskq-durable`` (journal on disk, the default mode), ``taskq-memory``
(``--in-memory``), ``processpool`` (``ProcessPoolExecutor``), ``seed`` (a bare
``multiprocessing.managers`` queue pair) and ``dask`` (``dask.distributed``, when installed:
``pip install 'taskq[bench]'``). Figures, machine info and target verdicts go to
``bench/results.json`` (``--json PATH``).
"""
