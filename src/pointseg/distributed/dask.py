"""Run pointseg's per-image and per-block work on a Dask distributed cluster.

Dask is optional: nothing here imports it at module level, and :func:`import_distributed`
names the install command when it is missing.

* :func:`dask_client` opens a :class:`distributed.Client` from the command-line options
  (``--dask-scheduler ADDRESS`` or ``--dask-workers N``) and closes it (and the local
  cluster it started) afterwards.
* :func:`run_tasks` submits one task per input, each on one torch thread, retries a failed
  task once, hands each result to a callback on the client as it arrives, and, when inputs
  still fail, raises :class:`TasksFailed` naming them once every other task has finished.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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

logger = logging.getLogger(__name__)

#: How to install the optional Dask dependency.
INSTALL_HINT = 'pip install "pointseg[dask]" (or pip install "dask[distributed]")'

#: Tasks in flight at once: enough to keep large clusters busy, few enough that the client
#: never holds the futures (or the scheduler the task graph) of a 100,000-tile archive.
MAX_IN_FLIGHT = 2000


def import_distributed() -> Any:
    """Import :mod:`distributed`, or fail with the install command.

    Raises
    ------
    ImportError
        When dask.distributed is not installed.
    """
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"--dask-scheduler/--dask-workers need dask.distributed, which is not installed "
            f"({exc}); install it with {INSTALL_HINT}, or drop the option to run serially"
        ) from exc
    return distributed


def check_dask_options(*, scheduler: str | None = None, workers: int | None = None) -> None:
    """Validate the Dask options: at most one of them, each well formed.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:8786``).
    workers : int, optional
        Worker processes of a local cluster.

    Raises
    ------
    ValueError
        Naming the offending value and the fix.
    """
    if scheduler is not None and workers is not None:
        raise ValueError(
            f"--dask-scheduler ({scheduler}) and --dask-workers ({workers}) exclude each other: "
            "connect to a running cluster, or start a local one, not both"
        )
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(f"--dask-workers must be an integer >= 1, got {workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ValueError(
            f"--dask-scheduler must be a scheduler address such as tcp://10.0.0.1:8786, "
            f"got {scheduler!r}"
        )


@contextlib.contextmanager
def dask_client(
    *, scheduler: str | None = None, workers: int | None = None, timeout: float = 30.0
) -> Iterator[Any]:
    """A Dask client for the options, or None when neither is given (run serially).

    Parameters
    ----------
    scheduler : str, optional
        Connect to the scheduler at this address (``dask scheduler`` prints it); the cluster
        is left running afterwards.
    workers : int, optional
        Start a :class:`distributed.LocalCluster` of ``workers`` processes of one thread each
        (no dashboard), closed afterwards.
    timeout : float
        Seconds to wait for the scheduler.

    Yields
    ------
    distributed.Client or None

    Raises
    ------
    ValueError
        On invalid options or an unreachable scheduler (naming the address).
    ImportError
        When dask.distributed is not installed (naming the install command).
    """
    check_dask_options(scheduler=scheduler, workers=workers)
    if scheduler is None and workers is None:
        yield None
        return
    distributed = import_distributed()
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            try:
                client = distributed.Client(scheduler, timeout=timeout)
            except OSError as exc:
                raise ValueError(
                    f"cannot connect to the Dask scheduler at {scheduler} ({exc}); start one "
                    "with 'dask scheduler' and pass the address it prints, or use "
                    "--dask-workers N for a local cluster"
                ) from exc
            stack.callback(client.close)
        else:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            stack.callback(cluster.close)
            client = distributed.Client(cluster)
            stack.callback(client.close)
        logger.info("Dask cluster %s", client)
        yield client


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args, **kwargs)`` on a worker, named for reports.

    ``fn`` and its arguments are pickled to the workers: module-level functions and plain
    data (paths, numbers, small arrays), never a whole dataset or raster.
    """

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFailure:
    """An input whose task failed on every attempt."""

    name: str
    error: str
    attempts: int


class TasksFailed(RuntimeError):
    """Some inputs failed after their retry; every other task has finished.

    Attributes
    ----------
    failures : list of TaskFailure
    n_tasks : int
        Tasks run in all.
    """

    def __init__(self, failures: Sequence[TaskFailure], n_tasks: int, what: str) -> None:
        self.failures = list(failures)
        self.n_tasks = n_tasks
        listed = "; ".join(f"{f.name}: {f.error}" for f in self.failures)
        super().__init__(
            f"{len(self.failures)} of {n_tasks} {what} failed after "
            f"{self.failures[0].attempts} attempts (the others completed): {listed}"
        )


_WORKER_CACHE: OrderedDict[Any, Any] = OrderedDict()


def worker_cached(key: Any, factory: Callable[[], Any], *, max_items: int = 4) -> Any:
    """``factory()``, kept per process under ``key`` (least recently used out).

    Tasks of one run share what every one of them needs (the model, the opened dataset)
    instead of loading it per input; keys must change with the content (e.g. a file's
    modification time).
    """
    if key in _WORKER_CACHE:
        _WORKER_CACHE.move_to_end(key)
        return _WORKER_CACHE[key]
    value = factory()
    _WORKER_CACHE[key] = value
    while len(_WORKER_CACHE) > max_items:
        _WORKER_CACHE.popitem(last=False)
    return value


def dataset_task(
    opener: Callable[[], Any],
    token: str,
    index: int,
    name: str,
    fn: Callable[..., Any],
    *args: Any,
) -> Any:
    """A task on one image of a dataset: ``fn(dataset, index, *args)``.

    The dataset is opened by ``opener`` once per worker process (``token`` names this run's
    dataset), and image ``index`` must be ``name`` there as on the client.
    """
    dataset = worker_cached(("dataset", token), opener)
    if dataset.names[index] != name:
        raise ValueError(
            f"image {index} is {dataset.names[index]!r} on this worker but {name!r} on the "
            "client: the workers see a different dataset (a shared folder out of sync?)"
        )
    return fn(dataset, index, *args)


def map_images(
    client: Any,
    names: Sequence[str],
    fn: Callable[..., Any],
    *,
    args: Callable[[int, str], tuple[Any, ...]],
    opener: Callable[[], Any] | None,
    progress: bool = False,
) -> list[Any]:
    """``fn(dataset, i, *args(i, name))`` for every image, one task each (see :func:`run_tasks`).

    Parameters
    ----------
    client : distributed.Client
    names : sequence of str
        The images of the dataset, in order (names the tasks in reports).
    fn : callable
        A picklable (module-level) function of ``(dataset, index, *args)``.
    args : callable
        The extra arguments of image ``i`` named ``name`` (small: points, settings).
    opener : callable
        Opens the same dataset on a worker (picklable, e.g.
        ``functools.partial(cfg.open_dataset, "train")``), once per worker process.
    progress : bool
        Show a progress bar of images.

    Returns
    -------
    list
        The results in image order.

    Raises
    ------
    ValueError
        Without ``opener``.
    TasksFailed
        Naming the images that failed twice, once the others are done.
    """
    if opener is None:
        raise ValueError("a distributed run needs opener, which opens the dataset on workers")
    token = uuid.uuid4().hex
    tasks = [
        Task(name, dataset_task, (opener, token, i, name, fn, *args(i, name)))
        for i, name in enumerate(names)
    ]
    results = run_tasks(client, tasks, progress=progress, what="images")
    return [results[name] for name in names]


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Run a task on a worker on one torch thread (N workers never oversubscribe the cores)."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        # returned, not raised: a plain message reaches the client whatever the exception
        # holds (Dask turns exceptions it cannot pickle into "Exception: Repr(...)")
        return _Failed(_describe(exc))


@dataclass(frozen=True)
class _Failed:
    """What a task raised, as ``Type: message``."""

    message: str


def _future_error(future: Any) -> str:
    try:
        return _describe(future.exception(timeout=10))
    except Exception as exc:  # cancelled, or the error itself does not unpickle
        return f"task {future.status} ({_describe(exc)})"


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_tasks(
    client: Any,
    tasks: Sequence[Task],
    *,
    on_result: Callable[[Task, Any], None] | None = None,
    retries: int = 1,
    progress: bool = False,
    what: str = "inputs",
) -> dict[str, Any]:
    """Run ``tasks`` on the cluster; retry failures; report inputs that still fail.

    Parameters
    ----------
    client : distributed.Client
    tasks : sequence of Task
        Names must be unique (they name the inputs in reports).
    on_result : callable, optional
        ``on_result(task, result)``, called on the client as each task finishes (in
        completion order), e.g. to write a finished block into the output.
    retries : int
        Times a failed task is submitted again (logged as a warning each time).
    progress : bool
        Show a tqdm progress bar.
    what : str
        What the tasks are, for the progress bar and the summary ("images", "blocks").

    Returns
    -------
    dict
        ``task name -> result``, for the tasks that succeeded.

    Raises
    ------
    TasksFailed
        After every task has finished, when some failed ``retries + 1`` times; it names
        each such input with its last error.
    ValueError
        On duplicate task names or a negative ``retries``.
    """
    distributed = import_distributed()
    from tqdm.auto import tqdm

    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError("task names must be unique: they name the inputs in reports")
    results: dict[str, Any] = {}
    failures: list[TaskFailure] = []
    pending = iter(tasks)
    by_key: dict[str, tuple[Task, int]] = {}
    done = distributed.as_completed()

    def submit(task: Task, attempt: int) -> None:
        future = client.submit(_call, task.fn, task.args, dict(task.kwargs), pure=False)
        by_key[future.key] = (task, attempt)
        done.add(future)

    for task in itertools.islice(pending, MAX_IN_FLIGHT):
        submit(task, 1)
    with tqdm(total=len(tasks), desc=what, unit=what.rstrip("s"), disable=not progress) as bar:
        for future in done:
            task, attempt = by_key.pop(future.key)
            # a task that raised returns _Failed; any other status is a lost worker or a task
            # the worker could not even unpickle
            finished = future.status == "finished"
            result = future.result() if finished else None
            if not finished or isinstance(result, _Failed):
                error = result.message if finished else _future_error(future)
                if attempt <= retries:
                    logger.warning(
                        "%s failed (%s); retrying (attempt %d of %d)",
                        task.name,
                        error,
                        attempt + 1,
                        retries + 1,
                    )
                    submit(task, attempt + 1)
                    continue
                logger.error("%s failed after %d attempts: %s", task.name, attempt, error)
                failures.append(TaskFailure(task.name, error, attempt))
            else:
                results[task.name] = result
                if on_result is not None:
                    on_result(task, result)
            future.release()
            bar.update(1)
            for nxt in itertools.islice(pending, 1):
                submit(nxt, 1)
    if failures:
        raise TasksFailed(failures, len(tasks), what)
    return results
