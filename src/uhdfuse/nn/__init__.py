"""Neural fusion: the IPL architecture (:mod:`.ipl`), its attention cache (:mod:`.cache`),
column bands (:mod:`.bands`) and weight files (:mod:`.weights`)."""

from .bands import BandPlan
from .cache import KVCache
from .ipl import IPL, VARIANTS, Block, IPLConfig, build, ipl_base, ipl_test

__all__ = ["IPL", "VARIANTS", "BandPlan", "Block", "IPLConfig", "KVCache", "build", "ipl_base", "ipl_test"]
