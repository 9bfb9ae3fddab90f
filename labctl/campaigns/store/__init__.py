"""The run store (SQLite; docs/store.md): the only place in labctl that writes or reads SQL.

- `schema`: the tables, their version and the migration of older files on open;
- `records`: the frozen records every reader returns (runs, units, events, batches, a cell's history);
- `codec`: how numeric arrays are encoded in blobs (compressed; per-cell traces as float32);
- `store`: `Store`, whose methods are the questions and writes the rest of labctl needs.
"""
from labctl.campaigns.store.records import (EventRecord, HistoryEntry, RunRecord, StoredBatch, UnitPlan,
                                            UnitRecord)
from labctl.campaigns.store.schema import SCHEMA_VERSION
from labctl.campaigns.store.store import (DEFAULT_STORE, EXPORT_COLUMNS, Store, StoreError, as_store_error,
                                          json_default, stored_form)

__all__ = ["DEFAULT_STORE", "EXPORT_COLUMNS", "SCHEMA_VERSION", "EventRecord", "HistoryEntry", "RunRecord", "Store",
           "StoreError", "StoredBatch", "UnitPlan", "UnitRecord", "as_store_error", "json_default",
           "stored_form"]
