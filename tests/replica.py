"""A phone's replica, as docs/clients.md tells an app to keep one: apply each page of a sync feed in order, keep the
cursor, ask again while `has_more`."""

from dataclasses import dataclass, field
from typing import Any

from tests.helpers import Api, eventually


@dataclass
class Replica:
    api: Api
    feed: str  # the feed's path through the gateway, e.g. /cases/v1/sync/cases
    headers: dict[str, str]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    removed: dict[str, dict[str, Any]] = field(default_factory=dict)  # the tombstones applied, by id
    cursor: str | None = None

    async def sync(self, limit: int = 50) -> None:
        while True:
            params: dict[str, Any] = {"limit": limit} | ({"cursor": self.cursor} if self.cursor else {})
            response = await self.api.client.get(self.feed, params=params, headers=self.headers)
            assert response.status_code == 200, response.text
            page = response.json()
            for item in page["items"]:
                if item["deleted"]:
                    self.records.pop(item["id"], None)
                    self.etags.pop(item["id"], None)
                    self.removed[item["id"]] = item
                else:
                    self.records[item["id"]] = item["record"]
                    self.etags[item["id"]] = item["etag"]
                    self.removed.pop(item["id"], None)
            self.cursor = page["next_cursor"]
            if not page["has_more"]:
                return

    async def sync_until(self, holds: Any, timeout: float = 60.0) -> None:
        """Sync until `holds(self)`: a change becomes readable once every older transaction has ended, which a
        loaded machine may delay."""

        async def synced() -> bool:
            await self.sync()
            return bool(holds(self))

        await eventually(synced, timeout=timeout, interval=0.2)
