"""Distributed labelling and prediction on a Dask cluster (optional: ``pointseg[dask]``)."""

from pointseg.distributed.dask import (
    INSTALL_HINT,
    Task,
    TaskFailure,
    TasksFailed,
    check_dask_options,
    dask_client,
    dataset_task,
    import_distributed,
    map_images,
    run_tasks,
    worker_cached,
)

__all__ = [
    "INSTALL_HINT",
    "Task",
    "TaskFailure",
    "TasksFailed",
    "check_dask_options",
    "dask_client",
    "dataset_task",
    "import_distributed",
    "map_images",
    "run_tasks",
    "worker_cached",
]
