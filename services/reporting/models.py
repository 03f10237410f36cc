"""Reporting tables: aggregates only, never names or other personal data."""

from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.common.consumer import feed_cursor_table
from services.common.db import new_metadata


class ReportingTable(SQLModel, registry=registry(metadata=new_metadata())):
    pass


metadata = ReportingTable.metadata
feed_cursors = feed_cursor_table(metadata)


class ChildCount(ReportingTable, table=True):
    """Children followed, per commune and sex."""

    __tablename__ = "child_count"

    commune_code: str = Field(primary_key=True, max_length=5)
    sex: str = Field(primary_key=True, max_length=10)
    province_code: str = Field(max_length=2, index=True)
    count: int = 0
