"""Build hook: compiles the C array model (emulator/c_core) and the SP 800-90B estimators
(labctl/puf/c) into cffi extensions.

All metadata lives in pyproject.toml; setuptools has no pyproject key for cffi modules,
so this file exists only to name the cffi builder.
"""
from setuptools import setup

setup(cffi_modules=["emulator/_build.py:ffibuilder", "labctl/puf/_build.py:ffibuilder"])
