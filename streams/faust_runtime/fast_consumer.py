"""A Faust consumer transport without the per-message task churn (``broker_consumer="healthbus-kafka://…"``).

Faust's ``Consumer._drain_messages`` (faust-streaming 0.15, transport/consumer.py) wraps *every* fetched
message in ``await self.wait_first(callback(message), self.suspend_flow.wait())``; mode's ``wait_first``
creates four tasks and cancels three of them, per message. That alone caps a worker near 11k msg/s here.
``BatchedDrainConsumer`` runs the identical per-message body but guards each fetched batch with one
``wait_first``, so a rebalance (``suspend_flow``) still aborts delivery. Offsets, acks and commits are
Faust's own code, unchanged.

It also lowers Faust's hard-coded ``fetch_max_wait_ms=1500``: aiokafka keeps one fetch per broker in
flight, and when back-pressure has paused the partitions with data, that fetch long-polls 1.5 s while the
resumed partitions wait (a third of the throughput on this broker).

These classes override private methods of faust's aiokafka driver, so pyproject pins faust-streaming to
0.15.x; tests/test_passthrough_stage.py fails if an upgrade changes the behaviour they rely on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport import drivers
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 100
TRANSPORT_SCHEME = "healthbus-kafka"


class FastConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by aiokafka's consumer.start()
        return consumer


class BatchedDrainConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> FastConsumerThread:
        return FastConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # mirrors faust 0.15 Consumer._drain_messages
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        add_gap = self._add_gap

        async def deliver(records: Any) -> None:
            since_yield = 0
            async for tp, message in records:
                since_yield += 1
                if since_yield > 100:  # let the agent run while a large batch is delivered
                    await asyncio.sleep(0)
                    since_yield = 0
                offset = message.offset
                read_offset = get_read_offset(tp)
                if read_offset is None or offset >= read_offset:
                    gap = offset - (read_offset or 0)
                    if gap > 1 and read_offset and acks_enabled_for(message.topic):
                        await add_gap(tp, read_offset + 1, offset)
                    await callback(message)
                    set_read_offset(tp, offset)

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                records = getmany(timeout=0.05 if self._buffered_partitions else 1.0)
                await self.sleep(0)
                if not self.should_stop:
                    await self.wait_first(deliver(records), self.suspend_flow.wait())  # once per batch
                    unset_flag(CONSUMER_FETCHING)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class FastTransport(faust_aiokafka.Transport):
    Consumer = BatchedDrainConsumer


drivers.TRANSPORTS.aliases.setdefault(TRANSPORT_SCHEME, f"{__name__}:FastTransport")
