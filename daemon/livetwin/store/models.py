"""The tables (SQLAlchemy 2 declarative, typed). Products keep their whole catalog record
as JSON beside the columns that are queried; scripts keep their lines as a JSON list of
{text, kind, intents}, so a version is one row and never changes once written (editing
makes a new draft row whose `parent_id` points at the old one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ProductRow(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(8))
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    position: Mapped[int] = mapped_column(Integer, default=0)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float)


class ScriptRow(Base):
    __tablename__ = "scripts"
    __table_args__ = (Index("ix_scripts_product_lang", "product_id", "lang"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    origin: Mapped[str] = mapped_column(String(16))  # template | llm | edit
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("scripts.id"), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class TranscriptRow(Base):
    __tablename__ = "transcript"

    row: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session: Mapped[str] = mapped_column(String(32), index=True)
    line_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reply_to: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ShowStateRow(Base):
    """Small state records the daemon keeps across restarts (the show director's
    position in its rotation: `show`), one JSON value per key."""

    __tablename__ = "show_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float)
