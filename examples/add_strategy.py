"""A search strategy of your own, in one file with one register call: first-improvement local
search. ``ntknas search --plugin examples/add_strategy.py --strategy local ...`` runs it beside
the built-in ones (random, rea, two-stage), with the same proxies, budgets, runs and outputs.

A strategy is a generator: it yields an ``Ask`` (architectures to score) and is sent back one
``Evaluation`` per architecture, which it records in the run's ``Ledger`` (steps, incumbent,
cost). It sees the proxy's fitness only (higher is better), never the reported accuracy.
"""

import numpy as np

from ntknas.search.strategies import FIRST, Ask, ProposalOrder, better, register_strategy


@register_strategy("local", description="first-improvement local search with random restarts")
def local_search(space, rng, ledger, settings):
    """Start at a random architecture; score its neighbours (one op or edge changed) in a random
    order and move to the first better one; when none is better, restart at a random one."""
    starts = ProposalOrder(space, rng)  # a seeded random order: restarts never repeat
    known = {}  # key -> Evaluation: what this run has scored, never asked for twice

    def score(arch):
        key = ledger.key(arch)
        if key not in known:
            (known[key],) = yield Ask(FIRST, [arch])
            ledger.record(FIRST, arch, known[key])
        return known[key]

    for position in range(len(starts)):
        if ledger.exhausted():
            return
        (current,) = starts.take(position, position + 1)
        fitness = (yield from score(current)).fitness
        moved = True
        while moved:
            moved = False
            neighbours = space.neighbours(current)
            for i in rng.permutation(len(neighbours)):
                if ledger.exhausted():
                    return
                candidate = neighbours[int(i)]
                evaluation = yield from score(candidate)
                if better(evaluation.fitness, fitness):
                    current, fitness, moved = candidate, evaluation.fitness, True
                    break


if __name__ == "__main__":
    from ntknas.search.strategies import Budget, Evaluation, Ledger, StrategySettings

    class Line:  # architectures 0..9 on a line, fitness = the number itself
        def size(self):
            return 10

        def arch_at(self, position):
            return position

        def neighbours(self, arch):
            return [a for a in (arch - 1, arch + 1) if 0 <= a < 10]

        def key(self, arch):
            return str(arch)

    ledger = Ledger(key=str, budget=Budget(candidates=10))
    search = local_search(Line(), np.random.default_rng(0), ledger, StrategySettings())
    try:
        ask = next(search)
        while True:
            ask = search.send([Evaluation(float(a), float(a)) for a in ask.archs])
    except StopIteration:
        pass
    print(ledger.best().incumbent_key, ledger.evaluations)
