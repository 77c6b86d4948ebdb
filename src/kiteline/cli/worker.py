"""`kiteline worker`: the background sweeps and webhook delivery in their own
process, for deployments that run servers with KITELINE_RUN_WORKERS=false."""

from __future__ import annotations

import asyncio
import signal

from kiteline.cli.output import console
from kiteline.settings import Settings


def work() -> None:
    from kiteline.server.blobs import open_blob_store
    from kiteline.server.kit.db import asyncpg_dsn, create_engine, create_sessionmaker
    from kiteline.server.kit.instruments import Instruments
    from kiteline.server.kit.migrate import upgrade
    from kiteline.server.kit.notify import PostgresRelay
    from kiteline.server.workers.runner import run_workers

    settings = Settings()

    async def main() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url)
        await upgrade(engine)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console.print("worker running; Ctrl-C stops it")
        # Seen by a server's /metrics when both share PROMETHEUS_MULTIPROC_DIR.
        instruments = Instruments()
        instruments.watch_pool(engine)
        # What the sweeps make runnable (a lost agent's retried job, a scheduled build) wakes
        # the agents long-polling the servers, as a server's own commits do.
        relay = None
        if engine.dialect.name == "postgresql":
            relay = PostgresRelay(asyncpg_dsn(engine))
            await relay.start()
        try:
            store = open_blob_store(settings)
            await run_workers(create_sessionmaker(engine), settings, stop, instruments, store)
        finally:
            if relay is not None:
                await relay.stop()
            await engine.dispose()
            instruments.close()

    asyncio.run(main())
