"""The runtime: asyncio scheduling; the only code that runs agents."""
