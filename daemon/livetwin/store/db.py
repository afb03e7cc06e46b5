"""`Store`: catalog, scripts and transcript through SQLAlchemy 2. `open_store(None)` is
the SQLite file `livetwin.db` in the livetwin home (LIVETWIN_HOME moves it); any other
SQLAlchemy URL (PostgreSQL) works the same way.

Every write is one transaction: a catalog import either stores every product of the
file or nothing, and a script's status changes only through `decide`. A script version
is immutable once written; `edit` writes a new draft version whose parent is the old
one, so what was approved is always what goes on air."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from livetwin.errors import InputError
from livetwin.events import Product
from livetwin.show.catalog import CatalogItem, product_from_json, product_full_json
from livetwin.store.models import Base, ProductRow, ScriptRow, ShowStateRow, TranscriptRow

STATUSES = ("draft", "approved", "rejected")
BUSY_TIMEOUT_MS = 5_000


@dataclass(frozen=True)
class ScriptLine:
    """One line of a script: its text, its segment kind (opener, feature, price, ...) and
    the intents the gesture planner uses (follow, cart, price, greeting, ...)."""

    text: str
    kind: str
    intents: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "kind": self.kind, "intents": list(self.intents)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ScriptLine:
        return cls(str(d["text"]), str(d["kind"]), tuple(d.get("intents") or ()))


@dataclass(frozen=True)
class ScriptRecord:
    """One stored version of a product's script."""

    id: int
    product_id: str
    lang: str
    version: int
    status: str
    origin: str
    lines: tuple[ScriptLine, ...]
    note: str = ""
    parent_id: int | None = None
    created_at: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The `livetwin scripts list --json` form (ARCHITECTURE §7)."""
        return {"id": self.id, "product_id": self.product_id, "version": self.version,
                "status": self.status}

    def to_json(self) -> dict[str, Any]:
        """Everything about this version (`scripts show`, the dashboard)."""
        return {**self.summary(), "lang": self.lang, "origin": self.origin,
                "note": self.note, "parent_id": self.parent_id,
                "created_at": self.created_at, "lines": [ln.to_json() for ln in self.lines]}


def _record(row: ScriptRow) -> ScriptRecord:
    return ScriptRecord(row.id, row.product_id, row.lang, row.version, row.status, row.origin,
                        tuple(ScriptLine.from_json(d) for d in row.lines), row.note,
                        row.parent_id, row.created_at)


def default_url() -> str:
    from livetwin.config import home_dir

    home = home_dir()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'livetwin.db'}"


def open_store(url: str | None = None) -> Store:
    """The store at SQLAlchemy `url` (None: livetwin.db in the livetwin home), with its
    tables created when missing."""
    url = url or default_url()
    try:
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(engine)
    except (SQLAlchemyError, ImportError) as exc:
        raise InputError(f"cannot open the store {url}: {exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0]}; check store.url.") from None
    return Store(engine)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Write-ahead log with synchronous=NORMAL: a commit is one append to the WAL, and
    a process killed at any moment (kill -9 mid-write, a crash) loses no committed
    transaction and never corrupts the file; only a power cut may roll back the last
    commits. busy_timeout: the CLI (`scripts approve`) and the daemon write the same
    file, so a writer waits for the other instead of failing at once."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        cur.close()


class Store:
    """Catalog, scripts and transcript (module doc)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> str:
        """One trivial query (the watchdog's check): the backend's name, and for SQLite
        its journal mode."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                return f"sqlite ({mode})"
            conn.exec_driver_sql("SELECT 1")
            return self.engine.dialect.name

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    # -------------------------------------------------------------- catalog

    def import_catalog(self, items: Sequence[CatalogItem], *, replace: bool = False
                       ) -> tuple[int, int, int]:
        """Store `items` (already validated) in one transaction: (added, updated,
        removed). With `replace`, products not in `items` are removed."""
        now = time.time()
        added = updated = removed = 0
        with self._tx() as s:
            existing = {r.id: r for r in s.scalars(select(ProductRow))}
            for pos, item in enumerate(items):
                p = item.product
                record = product_full_json(p, item.weight)
                row = existing.get(p.id)
                if row is None:
                    s.add(ProductRow(id=p.id, name=p.name, price=p.price, currency=p.currency,
                                     weight=item.weight, position=pos, record=record,
                                     updated_at=now))
                    added += 1
                    continue
                if row.record != record or row.position != pos:
                    updated += row.record != record
                    row.name, row.price, row.currency = p.name, p.price, p.currency
                    row.weight, row.position, row.record = item.weight, pos, record
                    row.updated_at = now
            if replace:
                keep = {i.product.id for i in items}
                gone = [pid for pid in existing if pid not in keep]
                if gone:
                    s.execute(delete(ProductRow).where(ProductRow.id.in_(gone)))
                removed = len(gone)
        return added, updated, removed

    def save_product(self, item: CatalogItem) -> bool:
        """Add or update one product (already validated) in one transaction, keeping the
        catalog's order (a new product goes last); True when it is new."""
        p = item.product
        record = product_full_json(p, item.weight)
        with self._tx() as s:
            row = s.get(ProductRow, p.id)
            if row is None:
                last = s.scalar(select(func.max(ProductRow.position)))
                s.add(ProductRow(id=p.id, name=p.name, price=p.price, currency=p.currency,
                                 weight=item.weight, position=(last or 0) + 1, record=record,
                                 updated_at=time.time()))
                return True
            if row.record != record:
                row.name, row.price, row.currency = p.name, p.price, p.currency
                row.weight, row.record, row.updated_at = item.weight, record, time.time()
            return False

    def catalog(self) -> list[CatalogItem]:
        """The stored products in catalog order, with their weights."""
        with self._sessions() as s:
            rows = s.scalars(select(ProductRow).order_by(ProductRow.position, ProductRow.id))
            return [CatalogItem(product_from_json(r.record), r.weight)
                    for r in rows]

    def products(self) -> list[Product]:
        return [item.product for item in self.catalog()]

    def product(self, product_id: str) -> Product:
        """The stored product `product_id`; InputError when there is none."""
        with self._sessions() as s:
            row = s.get(ProductRow, product_id)
            if row is None:
                raise InputError(f"no product '{product_id}' in the catalog; import it with "
                                 "`livetwin products import CATALOG.yaml`.")
            return product_from_json(row.record)

    # -------------------------------------------------------------- scripts

    def add_script(self, product_id: str, lang: str, lines: Iterable[ScriptLine], *,
                   origin: str, note: str = "", parent_id: int | None = None) -> ScriptRecord:
        """A new draft: the next version of `product_id`'s script in `lang`."""
        with self._tx() as s:
            if s.get(ProductRow, product_id) is None:
                raise InputError(f"no product '{product_id}' in the catalog; import it first.")
            last = s.scalar(select(func.max(ScriptRow.version)).where(
                ScriptRow.product_id == product_id, ScriptRow.lang == lang))
            row = ScriptRow(product_id=product_id, lang=lang, version=(last or 0) + 1,
                            status="draft", origin=origin,
                            lines=[ln.to_json() for ln in lines], note=note,
                            parent_id=parent_id, created_at=time.time())
            s.add(row)
            s.flush()
            return _record(row)

    def scripts(self, product_id: str | None = None) -> list[ScriptRecord]:
        """Every stored version (of one product), oldest first."""
        q = select(ScriptRow).order_by(ScriptRow.id)
        if product_id is not None:
            q = q.where(ScriptRow.product_id == product_id)
        with self._sessions() as s:
            return [_record(r) for r in s.scalars(q)]

    def script(self, script_id: int) -> ScriptRecord:
        """Version `script_id`; InputError when there is none."""
        with self._sessions() as s:
            row = s.get(ScriptRow, script_id)
            if row is None:
                raise InputError(f"no script {script_id}; see `livetwin scripts list`.")
            return _record(row)

    def decide(self, script_id: int, status: str) -> ScriptRecord:
        """Approve or reject version `script_id` (a rejected version can be approved
        later and an approved one withdrawn by rejecting it)."""
        if status not in ("approved", "rejected"):
            raise ValueError(status)
        with self._tx() as s:
            row = s.get(ScriptRow, script_id)
            if row is None:
                raise InputError(f"no script {script_id}; see `livetwin scripts list`.")
            if status == "approved" and s.get(ProductRow, row.product_id) is None:
                raise InputError(f"script {script_id} is for product '{row.product_id}', "
                                 "which is no longer in the catalog; import it again first.")
            row.status, row.decided_at = status, time.time()
            return _record(row)

    def on_air(self, lang: str) -> dict[str, ScriptRecord]:
        """Per product, the newest approved version in `lang`: the only script text that
        may go on air."""
        q = (select(ScriptRow).where(ScriptRow.status == "approved", ScriptRow.lang == lang)
             .order_by(ScriptRow.version))
        with self._sessions() as s:
            return {r.product_id: _record(r) for r in s.scalars(q)}

    # -------------------------------------------------------------- transcript

    def add_transcript(self, session: str, line_id: str, at: float, text: str, source: str,
                       product_id: str | None, reply_to: str | None) -> None:
        with self._tx() as s:
            s.add(TranscriptRow(session=session, line_id=line_id, at=at, text=text,
                                source=source, product_id=product_id, reply_to=reply_to))

    def transcript(self, session: str | None = None, after_row: int = 0, limit: int = 10_000
                   ) -> list[tuple[int, TranscriptRow]]:
        """(row number, row) of the transcript after `after_row`, oldest first."""
        q = select(TranscriptRow).where(TranscriptRow.row > after_row)
        if session is not None:
            q = q.where(TranscriptRow.session == session)
        q = q.order_by(TranscriptRow.row.desc()).limit(limit)
        with self._sessions() as s:
            rows = list(s.scalars(q))
        return [(r.row, r) for r in reversed(rows)]

    # -------------------------------------------------------------- show state

    def save_state(self, key: str, value: dict[str, Any]) -> None:
        """Replace the small state record `key` (the show's position) in one
        transaction: after a crash it is the old record or the new one, never half."""
        with self._tx() as s:
            row = s.get(ShowStateRow, key)
            if row is None:
                s.add(ShowStateRow(key=key, value=value, updated_at=time.time()))
            else:
                row.value, row.updated_at = value, time.time()

    def load_state(self, key: str) -> tuple[dict[str, Any], float] | None:
        """State record `key` and when it was written (unix seconds); None if none."""
        with self._sessions() as s:
            row = s.get(ShowStateRow, key)
            return None if row is None else (dict(row.value), row.updated_at)
