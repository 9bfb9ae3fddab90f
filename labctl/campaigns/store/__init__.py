"""The run store (SQLite; docs/store.md): the only place in labctl that writes or reads SQL.

- `schema`: the tables, their version and the migration of older files on open;
- `records`: the frozen records every reader returns (runs, units, events, batches, a cell's history);
- `codec`: how numeric arrays are encoded in blobs (compressed; per-cell traces as float32);
- `store`: `Store`, whose methods are the questions and writes the rest of labctl needs;
- `sweeps`: the sweep tables (`Store` mixes them in): sweeps, their ended tasks, runs copied from workers.
"""
from labctl.campaigns.store.records import (DieRecord, EventRecord, HistoryEntry, RunRecord, StoredBatch, UnitPlan,
                                            UnitRecord)
from labctl.campaigns.store.schema import SCHEMA_VERSION
from labctl.campaigns.store.sweeps import SweepRecord, TaskRecord
from labctl.campaigns.store.store import (DEFAULT_STORE, EXPORT_COLUMNS, Store, StoreError, as_store_error,
                                          json_default, stored_form)

__all__ = ["DEFAULT_STORE", "DieRecord", "EXPORT_COLUMNS", "SCHEMA_VERSION", "EventRecord", "HistoryEntry", "RunRecord",
           "Store", "StoreError", "StoredBatch", "SweepRecord", "TaskRecord", "UnitPlan", "UnitRecord", "as_store_error",
           "json_default", "stored_form"]
