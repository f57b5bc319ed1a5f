"""Orders created at checkout (binary-mode CloudEvents from `event-assets publish --demo`)."""

from pydantic import BaseModel, Field

from event_assets.contracts.contract import Contract


class OrderItem(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class OrderCreated(BaseModel):
    order_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    items: list[OrderItem] = Field(min_length=1)
    total_cents: int = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


CONTRACT = Contract(
    name="order_created_v1",
    model=OrderCreated,
    event_types=("com.example.order.created.v1",),
    description="Orders created at checkout; `items` is JSON text ([{sku, quantity}, ...]).",
)
