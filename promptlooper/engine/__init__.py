"""The asyncio engine: runs, sweeps, limits, progress and handles."""
