"""The spaces that ship with ntknas, registered when the registry is first used."""

from ntknas.spaces.base import register_space
from ntknas.spaces.custom import CustomSpace
from ntknas.spaces.nb101 import NB101Space
from ntknas.spaces.nb201 import NB201Space

for _space in (NB201Space(), NB101Space(), CustomSpace()):
    register_space(_space)
