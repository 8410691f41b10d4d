"""The central integration engine: inbound, durable queue, sequencer, release.

Public API for other areas:

- ``engine.queue``: ``DurableQueue.open(db_path, *, senders=None)``,
  ``await q.accept([Inbound(raw, lane, source)]) -> [Accepted(seq, status, reason)]``
  (committed before it returns), ``await q.close()``; ``q.depth(lane)``, ``q.counts()``.
- ``engine.pipeline.Engine``: queue + converter + store on one SQLite file;
  ``Engine.open(db, trusts)``, ``release(lane, n)``, ``drain(lane)``.
- ``engine.runner.release_forever(engine, stop)``: the release loop for a running engine.
- ``engine.replay.replay(...)``, ``engine.verify.verify(...)``,
  ``engine.reconcile.reconcile(conn)``, ``engine.deadletter``.
"""

from .queue import Accepted, DurableQueue, Inbound

__all__ = ["Accepted", "DurableQueue", "Inbound"]
