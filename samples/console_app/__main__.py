"""``python -m samples.console_app``: dispatch a few tasks and wait for them."""

from __future__ import annotations

import asyncio
import logging

from evertask import add_evertask

from .app import Container, configure, greet_everyone


async def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    container = Container()
    host = add_evertask(container, configure).add_memory_storage().build()
    async with host:
        await greet_everyone(host.dispatcher)
        await asyncio.wait_for(container.greeter().done.wait(), 10)
    print("greeted:", ", ".join(container.greeter().greeted))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
