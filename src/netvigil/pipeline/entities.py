"""Block → entity helpers shared by the aggregators.

:class:`RouteOrigins` is the pipeline's cross-source state: the origin AS of every /24 from
the BGP visibility facts, which the probing aggregation uses to attribute probed blocks to
ASes the way real data is attributed — by the routes, not by a table of the source's own.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]


class RouteOrigins:
    """Origin AS of every /24 as BGP last showed it: how real data attributes blocks to ASes.

    Fed by the pipeline from each :class:`netvigil.model.facts.BgpVisibility` fact (the
    origin of the most-specific full-feed route covering each visible /24). A /24 that
    stops being visible keeps its last origin (a blackout that withdraws routes must not
    move blocks out of their AS). Dense over the /24 space (2^24 × 4 bytes = 64 MiB),
    allocated on the first fact: updates and lookups are one scatter / gather.
    """

    def __init__(self) -> None:
        self._dense: npt.NDArray[np.uint32] | None = None
        #: bumped whenever an origin actually changes, so users can cache attributions
        self.version = 0

    @property
    def known(self) -> bool:
        return self._dense is not None

    def update(self, blocks: U32, origins: npt.NDArray[np.uint32]) -> None:
        if blocks.size == 0:
            return
        if self._dense is None:
            self._dense = np.zeros(1 << 24, dtype=np.uint32)
        o = np.asarray(origins, dtype=np.uint32)
        ok = o > 0
        slots = np.asarray(blocks, dtype=np.uint32)[ok] >> np.uint32(8)
        if not np.array_equal(self._dense[slots], o[ok]):
            self._dense[slots] = o[ok]
            self.version += 1

    def state(self) -> bytes:
        """The known origins as a compressed ``.npz`` (sparse: the /24 slots that have one)."""
        import io

        slots = (np.empty(0, np.uint32) if self._dense is None
                 else np.flatnonzero(self._dense).astype(np.uint32))
        vals = (np.empty(0, np.uint32) if self._dense is None else self._dense[slots])
        buf = io.BytesIO()
        np.savez_compressed(buf, slots=slots, origins=vals,
                            version=np.array([self.version], np.int64))
        return buf.getvalue()

    def restore(self, data: bytes) -> None:
        """Continue from :meth:`state`: a restart must not lose which AS announces a block
        (probed blocks would fall back to the geo AS tables until BGP data arrives)."""
        import io

        with np.load(io.BytesIO(data)) as z:
            slots = np.asarray(z["slots"], dtype=np.uint32)
            vals = np.asarray(z["origins"], dtype=np.uint32)
            version = int(z["version"][0])
        if slots.size and (slots.size != vals.size or int(slots.max()) >= 1 << 24):
            raise ValueError("corrupt route-origin checkpoint")
        self._dense = None
        if slots.size:
            self._dense = np.zeros(1 << 24, dtype=np.uint32)
            self._dense[slots] = vals
        self.version = version

    def lookup(self, blocks: U32) -> I64:
        """Origin AS of each /24 (0 = never seen in BGP)."""
        if self._dense is None:
            return np.zeros(np.asarray(blocks).shape, dtype=np.int64)
        out: I64 = self._dense[np.asarray(blocks, dtype=np.uint32) >> np.uint32(8)].astype(
            np.int64)
        return out
