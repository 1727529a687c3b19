"""The strategies that ship with ntknas, registered when the registry is first used."""

from ntknas.search.strategies.random import RANDOM
from ntknas.search.strategies.rea import REA
from ntknas.search.strategies.registry import register_strategy
from ntknas.search.strategies.two_stage import TWO_STAGE

for _strategy in (RANDOM, REA, TWO_STAGE):
    register_strategy(_strategy.name, _strategy)
