"""Components and a custom engine: Flock's extension points on the event log.

- ``SpamFilter`` (an orchestrator component) refuses to schedule anything for
  spam tickets; the refusal is recorded as ``schedule.vetoed``.
- ``MaskEmails`` (an agent component) hides e-mail addresses before the agent
  evaluates a ticket; what the agent evaluated is recorded (``inputs.rewritten``).
- ``TriageEngine`` (a custom engine) replaces the built-in model path: it asks
  the model through ``ctx.llm`` (recorded, served on resume and replay) and
  then applies its own rule.

flock-es run examples/components.py      # offline model by default
flock-es replay latest                   # identical
"""

import asyncio
import dataclasses
import re

from pydantic import BaseModel, Field

from flock_es import (
    AgentComponent,
    EngineComponent,
    EvalResult,
    Flock,
    OrchestratorComponent,
    ScheduleDecision,
    flock_type,
)


@flock_type
class Ticket(BaseModel):
    customer: str
    text: str


@flock_type
class Triage(BaseModel):
    priority: int = Field(ge=1, le=5, description="1 is the most urgent")
    summary: str


@flock_type
class Reply(BaseModel):
    text: str


EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


class SpamFilter(OrchestratorComponent):
    """Refuses every match of a ticket that looks like spam."""

    refused: int = 0

    async def on_before_schedule(self, orchestrator, artifact, agent, subscription):
        if "unsubscribe" in artifact.payload.get("text", "").lower():
            self.refused += 1
            return ScheduleDecision.SKIP
        return ScheduleDecision.CONTINUE

    async def on_shutdown(self, orchestrator):
        print(f"spam filter: {self.refused} match(es) refused")


class MaskEmails(AgentComponent):
    """Masks e-mail addresses in what the agent evaluates."""

    async def on_pre_consume(self, agent, ctx, inputs):
        return [
            dataclasses.replace(
                a, payload={**a.payload, "text": EMAIL.sub("<email>", a.payload["text"])}
            )
            for a in inputs
        ]

    async def on_post_publish(self, agent, ctx, artifact):
        print(f"{agent.name} published {artifact.type} {artifact.id}")


class TriageEngine(EngineComponent):
    """Asks the model for a triage, then escalates anything that mentions an outage."""

    async def evaluate(self, agent, ctx, inputs):
        ticket = inputs.first_as(Ticket)
        triage = await ctx.llm.structured(
            Triage, f"Triage this support ticket from {ticket.customer}: {ticket.text}"
        )
        if "outage" in ticket.text.lower():
            triage = triage.model_copy(update={"priority": 1})
        return EvalResult.from_object(triage, agent=agent)


flock = Flock()
flock.add_component(SpamFilter())

(
    flock.agent("triage")
    .description("Triages a support ticket")
    .consumes(Ticket)
    .publishes(Triage)
    .with_utilities(MaskEmails())
    .with_engines(TriageEngine())
)
flock.agent("responder").consumes(Triage).publishes(Reply).with_function(
    lambda t: Reply(text=f"Thanks! Priority {t.priority}: {t.summary[:40]}")
)


TICKETS = {
    "ada": "Total outage since 9am, write to ada@example.com",
    "bob": "How do I export my invoices?",
    "eve": "Click here to unsubscribe from prizes",
}


async def main():
    await flock.publish_many([Ticket(customer=c, text=t) for c, t in TICKETS.items()])
    await flock.run_until_idle()
    for reply in await flock.store.get_by_type(Reply):
        print(f"reply: {reply.text}")


if __name__ == "__main__":
    asyncio.run(main())
