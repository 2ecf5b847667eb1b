"""Neural fusion: the IPL architecture (:mod:`.ipl`) and its weight files (:mod:`.weights`)."""

from .ipl import IPL, VARIANTS, IPLConfig, build, ipl_base, ipl_test

__all__ = ["IPL", "VARIANTS", "IPLConfig", "build", "ipl_base", "ipl_test"]
