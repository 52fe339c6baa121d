"""The pools a worker runs tasks in: processes (``process``, ``driver``, ``child``,
``claims``, ``child_record``, ``progress_slot``), threads and asyncio (``local``,
``threads``, ``asyncio``), all taking ``job.Job`` and handing back ``job.Outcome``."""
