"""An executor of your own: how work items run. This one runs them in threads of this process
(useful when the work waits on something other than this process's CPU). Pass it to
``run_correlate(config, executor=ThreadExecutor(4))`` or ``run_track``."""

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ntknas.experiments.executors import Executor


class ThreadExecutor(Executor):
    name = "threads"

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def map(self, work, context, tasks, deadline=None):
        local = context.local()  # one readied context shared by the threads
        pending, running = iter(tasks), {}
        with ThreadPoolExecutor(self.threads) as pool:
            while True:
                while len(running) < self.threads and (deadline is None or time.monotonic() < deadline):
                    task = next(pending, None)
                    if task is None:
                        break
                    running[pool.submit(lambda t=task: list(work(local, t.item, t.done)))] = task
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield running.pop(future).item, future.result()
