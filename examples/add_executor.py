"""An executor of your own: how work items run. This one runs them in this process, like the
serial executor, and records how long each item took (e.g. to find the slow architectures of a
space before sizing a cluster). Pass it to ``run_correlate(config, executor=TimedExecutor())``,
``run_track`` or ``run_search``. (Threads would not do here: networks are initialized from
torch's process-wide random generator, so concurrent builds would interleave its draws.)"""

import time

from ntknas.execution.executors import Executor


class TimedExecutor(Executor):
    name = "timed"

    def __init__(self) -> None:
        self.seconds: dict[object, float] = {}

    def map(self, work, context, tasks, deadline=None):
        local = context.local()  # readied once, in the process that runs the items
        for task in tasks:
            if deadline is not None and time.monotonic() >= deadline:
                return  # no item starts after the deadline
            started = time.perf_counter()
            results = list(work(local, task.item, task.done))
            self.seconds[task.item] = time.perf_counter() - started
            yield task.item, results
