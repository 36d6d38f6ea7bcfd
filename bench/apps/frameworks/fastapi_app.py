"""FastAPI: a path parameter in, a pydantic model out as JSON."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]


@app.get("/items/{item_id}", response_model=Item)
async def read_item(item_id: int) -> Item:
    return Item(
        id=item_id, name=f"item {item_id}", price=9.5 + item_id, tags=["tools", "garden", "sale"]
    )
