"""Build hook: compiles the C array model (emulator/c_core) into a cffi extension.

All metadata lives in pyproject.toml; setuptools has no pyproject key for cffi modules,
so this file exists only to name the cffi builder.
"""
from setuptools import setup

setup(cffi_modules=["emulator/_build.py:ffibuilder"])
