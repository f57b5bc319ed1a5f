"""The seed's example: plain-JSON people, typed by the Pub/Sub attribute `event_type`."""

from pydantic import BaseModel

from event_assets.contracts.contract import Contract


class Person(BaseModel):
    name: str
    lastname: str


CONTRACT = Contract(
    name="person_v1",
    model=Person,
    event_types=("com.example.person.v1",),
    description="People, as the system we replace validated them.",
)
