"""A program whose agents hold a credential each way a user can give one.

``env``: the provider key in ``OPENAI_API_KEY``. ``setting``: ``api_key=`` in
code. ``header``: an ``extra_headers`` value. ``url``: a ``user:password@``
in ``api_base`` (refused before any work: see ``test_url_credentials``). The
values come from ``$K_SETTING``, ``$K_HEADER`` and ``$K_URL`` so the test owns
them; ``$SERVER`` is the loopback server's ``api_base``. ``$AGENTS`` picks the
agents (comma-separated), ``$ANSWER`` a text the triage summary must carry.
"""

import os
from typing import Any

from pydantic import BaseModel, Field

from flock_es import Flock, flock_type
from flock_es.models.retry import RetryPolicy


@flock_type
class Ticket(BaseModel):
    text: str = Field(min_length=5)


@flock_type
class Triage(BaseModel):
    summary: str
    priority: int = Field(ge=1, le=5)


server = os.environ["SERVER"]
flock = Flock("openai/test-model", retry=RetryPolicy(base_delay=0.01, timeout=20))
wanted = os.environ.get("AGENTS", "env,setting,header").split(",")
settings: dict[str, dict[str, Any]] = {
    "env": {"api_base": server},
    "setting": {"api_base": server, "api_key": os.environ.get("K_SETTING", "")},
    "header": {
        "api_base": server,
        "extra_headers": {"Ocp-Apim-Subscription-Key": os.environ.get("K_HEADER", "")},
    },
    "url": {"api_base": server.replace("http://", f"http://user:{os.environ.get('K_URL')}@")},
}
for name in wanted:
    flock.agent(name).description("Triage support tickets").consumes(Ticket).publishes(
        Triage
    ).model("openai/test-model", **settings[name])


async def main() -> None:
    await flock.publish(Ticket(text="The printer is on fire again"))
