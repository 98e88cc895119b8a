"""A small MCP server for examples/mcp_tools.py, written with the official
``mcp`` package's ``FastMCP`` (``pip install 'flock-es[mcp]'``).

It answers from a fixed table, so runs are reproducible. Run it on its own with
``python examples/mcp_server.py`` (stdio) or ``python examples/mcp_server.py
--http PORT`` (streamable HTTP on 127.0.0.1:PORT/mcp).
"""

import sys
import zlib

from mcp.server.fastmcp import FastMCP

server = FastMCP("weather")

SKIES = ["sunny", "cloudy", "light rain", "windy", "snow showers"]


@server.tool()
def forecast(city: str, days: int = 3) -> dict[str, str]:
    """The weather forecast for a city over the next days."""
    seed = zlib.crc32(city.lower().encode())
    days = max(1, min(days, 7))
    outlook = [f"day {d + 1}: {SKIES[(seed + d) % len(SKIES)]}" for d in range(days)]
    return {"forecast": f"{city}: " + ", ".join(outlook), "high_c": str(5 + seed % 20)}


@server.tool()
def advice(sky: str) -> dict[str, str]:
    """What to pack for a kind of weather."""
    if "rain" in sky or "snow" in sky:
        return {"packing": "a waterproof jacket and sturdy shoes"}
    return {"packing": "light layers and sunglasses"}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.settings.host = "127.0.0.1"
        server.settings.port = int(sys.argv[2])
        server.run(transport="streamable-http")
    else:
        server.run()
