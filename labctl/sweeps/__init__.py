"""Sweeps and Monte Carlo studies (docs/sweeps.md): many independent emulated runs on Dask, stored as they finish.

- `schema`: the sweep file's tables; `plan`: load a file and plan its tasks (seeds, axis values, inputs);
- `tasks`: what a worker runs (campaign tasks and the training, puf and mvm evaluations);
- `engine`: submission, retries, the one writer, resume; `report`: the tidy table, exports and plots;
- `cli`: `labctl sweep` and `labctl sweeps list|show|export|report`.
"""
