"""Process settings for serving turns, applied once start-up work is done.

* Native thread pools run on one thread: PyTorch's intra-op pool (the embedding model), and the OpenMP and
  BLAS pools behind FAISS and numpy (through `threadpoolctl`). Start-up embeds the knowledge base and the
  intent examples in large batches, where threads help; a turn embeds one short text, searches one vector and
  multiplies one row, where a second thread's hand-off costs more than it saves, and the pools' waiting
  threads spin: on the 2-core benchmark machine a turn took twice the CPU with the default pools
  (`bench/RESULTS.md`). Requests run in parallel across worker processes instead.
* `gc.freeze()` moves everything start-up allocated (the graph, the index, the model) out of the collector's
  generations, so collections during turns walk only what turns allocate.
"""

from __future__ import annotations

import gc
import sys

SERVING_THREADS = 1


def tune_threads() -> None:
    """One thread for every native pool loaded so far: PyTorch's, OpenMP's (FAISS) and BLAS's (numpy)."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(SERVING_THREADS)
    threadpool_limits(limits=SERVING_THREADS)


def settle_after_startup() -> None:
    """Call once in a serving process when start-up is complete: threads as above, then freeze the heap."""
    tune_threads()
    gc.collect()
    gc.freeze()
